"""Make untrusted text safe to print on a terminal or write into a log line.

Payload field names, topic levels, YAML keys and file names come from outside. Printed raw,
an ESC sequence can repaint or hide a terminal's text, a CR or LF can forge a log line, a
bidi override can reorder what the reader sees (CVE-2021-42574, "Trojan Source"), and a
lone surrogate makes the UTF-8 encoder of stdout raise. `printable` escapes exactly those
characters, Python-style (`\\x1b`, `\\n`, `\\u202e`), and leaves every other character,
accents included, as it is:

    printable("eco/s1/\\x1b[2Jm1")  ->  "eco/s1/\\\\x1b[2Jm1"
"""

from __future__ import annotations

import re

__all__ = ["printable"]

_UNSAFE = re.compile(
    "["
    "\x00-\x1f\x7f"  # C0 controls (ESC, CR, LF, TAB, NUL, …) and DEL
    "\x80-\x9f"  # C1 controls (CSI 0x9b is ESC [ on some terminals)
    "\u061c\u200e\u200f"  # bidi marks (Arabic letter mark, LRM, RLM)
    "\u2028\u2029"  # line and paragraph separators
    "\u202a-\u202e"  # bidi embeddings and overrides
    "\u2066-\u2069"  # bidi isolates
    "\ud800-\udfff"  # lone surrogates (from surrogateescape): unencodable
    "]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: object, *, keep_newlines: bool = False) -> str:
    """`text` (any object, via `str`) with control, bidi and surrogate characters escaped.

    `keep_newlines=True` leaves LF alone, for text that is multi-line by design (a
    traceback); everything else on those lines is still escaped.
    """
    raw = text if isinstance(text, str) else str(text)
    if _UNSAFE.search(raw) is None:  # the common case: no copy, no callback
        return raw
    if keep_newlines:
        return "\n".join(_UNSAFE.sub(_escape, line) for line in raw.split("\n"))
    return _UNSAFE.sub(_escape, raw)
