"""GSM 03.38 (GSM-7): what fits in one 160-character SMS.

Characters outside the basic set and its extension are transliterated (so an Italian text
never silently becomes a 70-character UCS-2 message); extension characters count twice.
"""

from __future__ import annotations

import unicodedata

__all__ = ["fit_sms", "septets", "to_gsm7"]

_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_EXTENDED = "^{}\\[~]|€\f"
_GSM = frozenset(_BASIC) | frozenset(_EXTENDED)
_REPLACE = {
    "≥": ">=",
    "≤": "<=",
    "°": "o",
    "µ": "u",
    "³": "3",
    "²": "2",
    "–": "-",
    "—": "-",
    "’": "'",
    "‘": "'",
    "“": '"',
    "”": '"',
    "…": "...",
    "·": ".",
    "×": "x",
    "\t": " ",
    "È": "E",
    "À": "A",
    "Ì": "I",
    "Ò": "O",
    "Ù": "U",
    "á": "a",
    "í": "i",
    "ó": "o",
    "ú": "u",
    "ç": "c",
    "ê": "e",
    "â": "a",
    "ô": "o",
    "î": "i",
    "û": "u",
    "ë": "e",
    "ï": "i",
}


def to_gsm7(text: str) -> str:
    out = []
    for ch in text:
        if ch in _GSM:
            out.append(ch)
        elif ch in _REPLACE:
            out.append(_REPLACE[ch])
        else:
            base = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
            out.append(base if base and all(c in _GSM for c in base) else "?")
    return "".join(out)


def septets(text: str) -> int:
    return sum(2 if ch in _EXTENDED else 1 for ch in text)


def fit_sms(head: str, tail: str, limit: int = 160) -> str:
    """`head` shortened (with '…' as '...') so that `head + tail` fits `limit` septets; the
    tail (code and link) is never cut."""
    head, tail = to_gsm7(head), to_gsm7(tail)
    room = limit - septets(tail)
    if septets(head) <= room:
        return head + tail
    while head and septets(head) > room - 3:
        head = head[:-1]
    return head.rstrip() + "..." + tail
