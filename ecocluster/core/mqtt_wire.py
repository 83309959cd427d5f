"""The MQTT wire codec (3.1.1 and 5.0), shared by every MQTT client of the project: the
asyncio subscriber and publisher (`ecocluster.ingest.mqtt`) and the simulator's fast path.

Pure functions over bytes, no I/O. Decoding never trusts a length: anything short, over-long
or inconsistent raises `MalformedPacket` (a `ValueError`), which each client maps to its
protocol error and a reconnect. `PacketSplitter` cuts a byte stream into packets in time
linear in the bytes fed, however the stream is split (a 64 MiB packet in 64 KiB reads is
copied once, not 1,000 times).

Packet layouts cited below are sections of MQTT 3.1.1 (OASIS 2014) and MQTT 5.0 (OASIS 2019).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "CONNACK",
    "DISCONNECT",
    "DISCONNECT_PACKET",
    "MAX_REMAINING_LENGTH",
    "PINGREQ_PACKET",
    "PINGRESP",
    "PUBACK",
    "PUBLISH",
    "SUBACK",
    "ConnAck",
    "MalformedPacket",
    "PacketSplitter",
    "connect_packet",
    "decode_varint",
    "encode_varint",
    "packet",
    "parse_connack",
    "parse_disconnect",
    "parse_properties",
    "parse_puback",
    "parse_suback",
    "puback_packets",
    "publish_header",
    "publish_packet",
    "subscribe_packet",
    "text_field",
]

# Control packet types (§2.2.1)
CONNACK, PUBLISH, PUBACK, SUBACK, PINGRESP, DISCONNECT, AUTH = 2, 3, 4, 9, 13, 14, 15
PINGREQ_PACKET: Final = b"\xc0\x00"
#: Normal disconnection; the same two bytes are valid in 3.1.1 and 5 (§3.14.2.1).
DISCONNECT_PACKET: Final = b"\xe0\x00"
#: The largest Remaining Length four bytes can encode (§2.2.3 / §1.5.5).
MAX_REMAINING_LENGTH: Final = 268_435_455

_U16: Final = struct.Struct("!H")
_U32: Final = struct.Struct("!I")
_PUBACK: Final = struct.Struct("!BBH")


class MalformedPacket(ValueError):
    """Bytes that are not a valid MQTT packet (short, over-long, a bad length or type)."""


# -- variable byte integer (§2.2.3 in 3.1.1, §1.5.5 in 5) ---------------------------------
def encode_varint(n: int) -> bytes:
    """The Variable Byte Integer encoding of `n` (1 to 4 bytes, 7 bits each, LSB first)."""
    if not 0 <= n <= MAX_REMAINING_LENGTH:
        raise ValueError(f"{n} does not fit an MQTT variable byte integer")
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | 0x80 if n else digit)
        if not n:
            return bytes(out)


def decode_varint(buf: bytes | bytearray | memoryview, pos: int, end: int) -> tuple[int, int]:
    """(value, position after it) of the Variable Byte Integer at `buf[pos:end]`.

    Returns (-1, pos) when the bytes end before the integer does (more may arrive); raises
    `MalformedPacket` for a fifth continuation byte."""
    value, shift, i = 0, 0, pos
    while i < end:
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        i += 1
        if byte < 0x80:
            return value, i
        shift += 7
        if shift > 21:
            raise MalformedPacket("variable byte integer longer than 4 bytes")
    return -1, pos


def _varint_in(buf: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    """A Variable Byte Integer inside a complete packet: running out of bytes is malformed."""
    value, nxt = decode_varint(buf, pos, end)
    if value < 0:
        raise MalformedPacket("packet ends inside a variable byte integer")
    return value, nxt


def text_field(value: str | bytes) -> bytes:
    """A UTF-8 string or binary field: 2-byte length, then the bytes (§1.5.4)."""
    raw = value.encode() if isinstance(value, str) else value
    if len(raw) > 0xFFFF:
        raise ValueError("MQTT strings are at most 65,535 bytes")
    return _U16.pack(len(raw)) + raw


def packet(first: int, body: bytes) -> bytes:
    """Fixed header (type and flags, Remaining Length) + body."""
    return bytes((first,)) + encode_varint(len(body)) + body


# -- building ---------------------------------------------------------------------------
def connect_packet(
    client_id: str,
    *,
    v5: bool,
    keepalive_s: int,
    username: str | None = None,
    password: str | None = None,
    clean_start: bool = False,
    session_expiry_s: int = 0,
    receive_maximum: int | None = 65535,
    maximum_packet_size: int | None = None,
) -> bytes:
    """CONNECT (§3.1). Clean start off asks for a persistent session; v5 properties carry
    the session expiry, our Receive Maximum and our Maximum Packet Size (§3.1.2.11)."""
    flags = 0x02 if clean_start else 0
    if username:
        flags |= 0x80 | (0x40 if password is not None else 0)
    header = text_field("MQTT") + bytes((5 if v5 else 4, flags)) + _U16.pack(keepalive_s)
    if v5:
        props = b""
        if session_expiry_s:
            props += b"\x11" + _U32.pack(session_expiry_s)
        if receive_maximum is not None:
            props += b"\x21" + _U16.pack(receive_maximum)
        if maximum_packet_size is not None:
            props += b"\x27" + _U32.pack(maximum_packet_size)
        header += encode_varint(len(props)) + props
    payload = text_field(client_id)
    if username:
        payload += text_field(username)
        if password is not None:
            payload += text_field(password)
    return packet(0x10, header + payload)


def subscribe_packet(mid: int, filters: list[str], qos: int, *, v5: bool) -> bytes:
    """SUBSCRIBE (§3.8): every filter at `qos` (v5: no local, retain options left at 0)."""
    body = _U16.pack(mid) + (b"\x00" if v5 else b"")
    for topic_filter in filters:
        body += text_field(topic_filter) + bytes((qos,))
    return packet(0x82, body)


def publish_header(
    topic: bytes, payload_len: int, *, qos: int, mid: int, v5: bool, retain: bool, dup: bool
) -> bytes:
    """Everything of a PUBLISH (§3.3) but its payload, so a caller can write the payload
    without copying it into the packet."""
    first = 0x30 | (qos << 1) | (0x08 if dup else 0) | (0x01 if retain else 0)
    variable = _U16.pack(len(topic)) + topic + (_U16.pack(mid) if qos else b"")
    if v5:
        variable += b"\x00"  # no properties
    return bytes((first,)) + encode_varint(len(variable) + payload_len) + variable


def publish_packet(
    topic: str,
    payload: bytes,
    *,
    qos: int = 0,
    mid: int = 0,
    v5: bool = False,
    retain: bool = False,
    dup: bool = False,
) -> bytes:
    head = publish_header(
        topic.encode(), len(payload), qos=qos, mid=mid, v5=v5, retain=retain, dup=dup
    )
    return head + payload


def puback_packets(mids: list[int]) -> bytes:
    """PUBACKs with success and no properties: the same four bytes in 3.1.1 and 5."""
    pack = _PUBACK.pack
    return b"".join([pack(0x40, 2, mid) for mid in mids])


# -- properties (MQTT 5 §2.2.2) -----------------------------------------------------------
_BYTE, _U16_T, _U32_T, _VARINT, _UTF8, _BINARY, _PAIR = range(7)
_PROPERTY_TYPES: Final = {
    0x01: _BYTE, 0x02: _U32_T, 0x03: _UTF8, 0x08: _UTF8, 0x09: _BINARY, 0x0B: _VARINT,
    0x11: _U32_T, 0x12: _UTF8, 0x13: _U16_T, 0x15: _UTF8, 0x16: _BINARY, 0x17: _BYTE,
    0x18: _U32_T, 0x19: _BYTE, 0x1A: _UTF8, 0x1C: _UTF8, 0x1F: _UTF8, 0x21: _U16_T,
    0x22: _U16_T, 0x23: _U16_T, 0x24: _BYTE, 0x25: _BYTE, 0x26: _PAIR, 0x27: _U32_T,
    0x28: _BYTE, 0x29: _BYTE, 0x2A: _BYTE,
}  # fmt: skip
_USER_PROPERTY: Final = 0x26


def _string_at(buf: bytes | memoryview, pos: int, end: int) -> tuple[bytes, int]:
    if pos + 2 > end:
        raise MalformedPacket("packet ends inside a string length")
    n = (buf[pos] << 8) | buf[pos + 1]
    if pos + 2 + n > end:
        raise MalformedPacket("string longer than its packet")
    return bytes(buf[pos + 2 : pos + 2 + n]), pos + 2 + n


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise MalformedPacket("invalid UTF-8 in a string field") from None


def parse_properties(buf: bytes | memoryview, pos: int, end: int) -> tuple[dict[int, Any], int]:
    """The property block at `pos` (its length first): ({id: value}, position after it).
    User properties (0x26) collect into a list of (name, value) pairs."""
    length, pos = _varint_in(buf, pos, end)
    stop = pos + length
    if stop > end:
        raise MalformedPacket("properties longer than their packet")
    props: dict[int, Any] = {}
    while pos < stop:
        ident = buf[pos]
        kind = _PROPERTY_TYPES.get(ident)
        pos += 1
        value: Any
        if kind is None:
            raise MalformedPacket(f"unknown property {ident:#04x}")
        if kind == _BYTE:
            if pos + 1 > stop:
                raise MalformedPacket("property value beyond the property block")
            value, pos = buf[pos], pos + 1
        elif kind == _U16_T:
            if pos + 2 > stop:
                raise MalformedPacket("property value beyond the property block")
            value, pos = (buf[pos] << 8) | buf[pos + 1], pos + 2
        elif kind == _U32_T:
            if pos + 4 > stop:
                raise MalformedPacket("property value beyond the property block")
            value, pos = int.from_bytes(buf[pos : pos + 4], "big"), pos + 4
        elif kind == _VARINT:
            value, pos = _varint_in(buf, pos, stop)
        elif kind == _BINARY:
            value, pos = _string_at(buf, pos, stop)
        else:
            raw, pos = _string_at(buf, pos, stop)
            value = _utf8(raw)
            if kind == _PAIR:
                raw2, pos = _string_at(buf, pos, stop)
                props.setdefault(_USER_PROPERTY, []).append((value, _utf8(raw2)))
                continue
        props[ident] = value
    if pos != stop:
        raise MalformedPacket("property block length does not match its properties")
    return props, stop


# -- parsing the broker's packets ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ConnAck:
    """CONNACK (§3.2). v5 properties bind the client ([MQTT-3.2.2-21] and §3.2.2.3)."""

    session_present: bool
    code: int
    properties: dict[int, Any] = field(default_factory=dict)

    @property
    def server_keepalive_s(self) -> int | None:
        return self.properties.get(0x13)

    @property
    def receive_maximum(self) -> int:
        return int(self.properties.get(0x21, 65535))

    @property
    def maximum_packet_size(self) -> int | None:
        return self.properties.get(0x27)

    @property
    def maximum_qos(self) -> int:
        return int(self.properties.get(0x24, 2))

    @property
    def shared_subscription_available(self) -> bool:
        return bool(self.properties.get(0x2A, 1))

    @property
    def retain_available(self) -> bool:
        return bool(self.properties.get(0x25, 1))

    @property
    def reason_string(self) -> str | None:
        return self.properties.get(0x1F)


def parse_connack(body: bytes | memoryview, *, v5: bool) -> ConnAck:
    """A 3.1.1 CONNACK is 2 bytes; a v5 one adds properties. A 3.1.1-only broker answers
    a v5 CONNECT with a 2-byte CONNACK (code 0x01): accepted here, judged by the caller."""
    if len(body) < 2:
        raise MalformedPacket("CONNACK shorter than 2 bytes")
    if body[0] & 0xFE:
        raise MalformedPacket("CONNACK with reserved flags set")
    props: dict[int, Any] = {}
    if v5 and len(body) > 2:
        props, end = parse_properties(body, 2, len(body))
        if end != len(body):
            raise MalformedPacket("bytes after the CONNACK properties")
    elif not v5 and len(body) != 2:
        raise MalformedPacket("3.1.1 CONNACK longer than 2 bytes")
    return ConnAck(bool(body[0] & 1), body[1], props)


def parse_suback(body: bytes | memoryview, *, v5: bool) -> tuple[int, list[int]]:
    """(packet id, one return code per filter) of a SUBACK (§3.9)."""
    if len(body) < 3:
        raise MalformedPacket("SUBACK too short")
    mid, pos = (body[0] << 8) | body[1], 2
    if v5:
        _, pos = parse_properties(body, pos, len(body))
    codes = list(bytes(body[pos:]))
    if not codes:
        raise MalformedPacket("SUBACK without return codes")
    return mid, codes


def parse_puback(body: bytes | memoryview, *, v5: bool) -> tuple[int, int]:
    """(packet id, reason code) of a PUBACK (§3.4); the reason is 0 when omitted."""
    if len(body) < 2:
        raise MalformedPacket("PUBACK shorter than 2 bytes")
    code = body[2] if v5 and len(body) > 2 else 0
    return (body[0] << 8) | body[1], code


def parse_disconnect(body: bytes | memoryview, *, v5: bool) -> tuple[int, str | None]:
    """(reason code, reason string) of a broker's DISCONNECT (v5 only, §3.14)."""
    if not v5 or not body:
        return 0, None
    reason = None
    if len(body) > 1:
        props, _ = parse_properties(body, 1, len(body))
        reason = props.get(0x1F)
    return body[0], reason


class PacketSplitter:
    """Cuts a byte stream into packets, linear in the bytes fed.

    `feed(data)` yields `(first byte, buf, start, end)` for every packet complete so far:
    its body is `buf[start:end]` (positions, not copies: the hot path slices the payload
    out once). The tail of an unfinished packet is kept in a `bytearray` grown in place
    and parsed only once the packet is whole (its length is known from the fixed header).
    A Remaining Length over `max_packet_size` raises `MalformedPacket`."""

    def __init__(self, max_packet_size: int = MAX_REMAINING_LENGTH) -> None:
        self.max_packet_size = max_packet_size
        self._tail = bytearray()
        self._need = 0  # bytes the tail must hold before parsing it again

    @property
    def buffered(self) -> int:
        return len(self._tail)

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes, int, int]]:
        if self._tail:
            self._tail += data
            if len(self._tail) < self._need:
                return
            buf = bytes(self._tail)
            self._tail = bytearray()
        else:
            buf = data
        n, pos, limit = len(buf), 0, self.max_packet_size
        while pos < n:
            if n - pos < 2:
                self._keep(buf, pos, pos + 2)
                return
            length, start = decode_varint(buf, pos + 1, n)
            if length < 0:
                self._keep(buf, pos, n + 1)
                return
            if length > limit:
                raise MalformedPacket(f"packet of {length} bytes, over the {limit} allowed")
            end = start + length
            if end > n:
                self._keep(buf, pos, end)
                return
            yield buf[pos], buf, start, end
            pos = end

    def _keep(self, buf: bytes, pos: int, need_end: int) -> None:
        self._tail = bytearray(buf[pos:])
        self._need = need_end - pos
