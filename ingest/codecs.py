"""Payload codecs: native JSON and SenML JSON (RFC 8428) → rows of a `Columns` accumulator.

Decoding is per reading: a bad reading becomes a `Rejection` and its good neighbours in the
same payload still count. Values are only type-checked here (numbers, not bools or
strings); finiteness, physical bounds and time bounds are checked afterwards on whole
arrays (`validate.check_rows`).

JSON on the wire is UTF-8 (RFC 8259 §8.1): a byte order mark, UTF-16/32 or invalid UTF-8 is
rejected, and so is a lone surrogate escape (`"\\ud800"`), which no UTF-8 text can hold.
The hot path is one `orjson.loads` and a dict walk per message; the stdlib parser is the
fallback only for `NaN`/`Infinity` literals, so that such a literal rejects one reading,
not the payload.

Readings without a time (native without `ts`, SenML whose resolved time is relative) are
the caller's policy: with `untimed=False` they are rejected (`no_time`); with
`untimed=True` their row holds the offset in ms from the message's receipt stamp and is
listed in `Columns.relative_rows`, which the pipeline resolves to one distinct stamp per
message.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from ecocluster.ingest.errors import Reason
from ecocluster.ingest.units import canonical_quantity, conversion_for, units_of

__all__ = ["Columns", "Rejection", "decode_native", "decode_senml"]

#: SenML times below 2**28 are relative to "now" (RFC 8428 §4.5.3).
_SENML_RELATIVE_LIMIT: Final = 2**28
_INT64_MAX: Final = 2**63 - 1
_NO_SERIES: Final = -1
_FAILED: Final = object()
#: A resolved SenML name (RFC 8428 §4.5.1).
_SENML_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9:./_-]*")
_NAME_PARTS: Final = re.compile(r"[:/]")
_NON_FINITE_LITERAL: Final = re.compile(rb"NaN|Infinity")


@dataclass(slots=True)
class Rejection:
    """One rejected reading (or a whole message when `field` names no reading)."""

    msg: int
    reason: Reason
    message: str
    field: str = ""
    count: int = 1


@dataclass(slots=True)
class Columns:
    """Rows decoded from a burst of messages; `msg[i]` is the index of row i's message.

    `relative_rows` lists rows whose `ts_ms` is an offset from their message's receipt
    stamp (readings without an absolute time, when the policy stamps them)."""

    msg: list[int] = field(default_factory=list)
    series_idx: list[int] = field(default_factory=list)
    ts_ms: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    relative_rows: list[int] = field(default_factory=list)

    def reject(self, msg: int, reason: Reason, message: str, fld: str = "", count: int = 1) -> None:
        self.rejections.append(Rejection(msg, reason, message, fld, count))

    def truncate(self, rows: int, rejections: int, relative: int) -> None:
        """Forget everything added after these lengths (a message that failed half-way)."""
        del self.msg[rows:], self.series_idx[rows:], self.ts_ms[rows:], self.values[rows:]
        del self.rejections[rejections:], self.relative_rows[relative:]

    def __len__(self) -> int:
        return len(self.ts_ms)


class _EncodingError(ValueError):
    pass


def _loads(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)  # UTF-8 only; refuses a BOM and lone surrogates
    except orjson.JSONDecodeError as exc:
        if payload[:3] == b"\xef\xbb\xbf" or b"\x00" in payload[:4]:
            raise _EncodingError("JSON must be UTF-8 without a byte order mark") from None
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise _EncodingError(f"JSON must be UTF-8 ({bad.reason} at byte {bad.start})") from None
        if _NON_FINITE_LITERAL.search(payload) is None:
            raise exc
    # NaN / Infinity literals are not JSON; the stdlib reads them so that only the reading
    # that holds one is rejected (as not finite).
    doc = json.loads(text)
    if _has_surrogate(doc):
        raise ValueError("a string holds a lone surrogate escape")
    return doc


def _has_surrogate(doc: Any) -> bool:
    stack = [doc]
    while stack:
        item = stack.pop()
        if type(item) is str:
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif type(item) is dict:
            stack.extend(item.keys())
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
    return False


def _load_or_reject(payload: bytes, msg: int, out: Columns) -> Any:
    try:
        return _loads(payload)
    except _EncodingError as exc:
        out.reject(msg, Reason.NOT_UTF8, str(exc))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        out.reject(msg, Reason.NOT_JSON, f"not JSON: {str(exc)[:120]}")
    return _FAILED


def _number(value: Any) -> float | None:
    kind = type(value)
    if kind is float:
        return value  # type: ignore[no-any-return,unused-ignore]
    if kind is int:
        try:
            return float(value)
        except OverflowError:
            return math.inf
    return None


def _ms(value: float) -> int | None:
    """Seconds or milliseconds as int ms; None when not representable (NaN, ±inf, huge)."""
    if not math.isfinite(value) or abs(value) > _INT64_MAX:
        return None
    return round(value)


# -- native ---------------------------------------------------------------------------------
def decode_native(
    payload: bytes,
    msg: int,
    series_of: Mapping[str, int],
    out: Columns,
    *,
    untimed: bool,
) -> None:
    """`{"ts": ms, "m": {quantity: value, …}}` or a list of such objects.

    `series_of` maps the meter's declared quantities to series indices."""
    doc = _load_or_reject(payload, msg, out)
    if doc is _FAILED:
        return
    if type(doc) is dict:
        _native_object(doc, "", msg, series_of, out, untimed)
    elif type(doc) is list:
        if not doc:
            out.reject(msg, Reason.SCHEMA, "empty array: no readings")
        for i, item in enumerate(doc):
            _native_object(item, f"[{i}]", msg, series_of, out, untimed)
    else:
        out.reject(msg, Reason.SCHEMA, f"expected an object or an array, got {_kind(doc)}")


def _native_object(
    obj: Any, path: str, msg: int, series_of: Mapping[str, int], out: Columns, untimed: bool
) -> None:
    if type(obj) is not dict:
        out.reject(msg, Reason.SCHEMA, f"expected an object, got {_kind(obj)}", path)
        return
    readings = obj.get("m")
    if type(readings) is not dict or not readings:
        out.reject(msg, Reason.SCHEMA, 'missing "m": an object of quantity: value', path + ".m")
        return
    ts = obj.get("ts")
    if ts is None:
        if not untimed:
            out.reject(
                msg,
                Reason.NO_TIME,
                'no "ts": readings without a time are refused (ECOCLUSTER_INGEST_MISSING_TS)',
                path + ".ts",
                len(readings),
            )
            return
        first = len(out.ts_ms)
        _native_readings(readings, 0, path, msg, series_of, out)
        out.relative_rows.extend(range(first, len(out.ts_ms)))  # offsets from the stamp
        return
    t = _number(ts)
    if t is None or not math.isfinite(t) or abs(t) > _INT64_MAX:
        out.reject(
            msg,
            Reason.BAD_TIME,
            f"ts must be epoch milliseconds, got {ts!r:.40}",
            path + ".ts",
            len(readings),
        )
        return
    _native_readings(readings, int(t), path, msg, series_of, out)


def _native_readings(
    readings: dict[str, Any],
    ts_ms: int,
    path: str,
    msg: int,
    series_of: Mapping[str, int],
    out: Columns,
) -> None:
    for name, value in readings.items():
        sidx = series_of.get(name, _NO_SERIES)
        v = _number(value)
        if sidx == _NO_SERIES or v is None:
            _reject_reading(name, value, sidx, f"{path}.m.{_printable(name)}", msg, out)
            continue
        out.msg.append(msg)
        out.series_idx.append(sidx)
        out.ts_ms.append(ts_ms)
        out.values.append(v)


def _reject_reading(name: str, value: Any, sidx: int, fld: str, msg: int, out: Columns) -> None:
    if sidx == _NO_SERIES:
        if canonical_quantity(name) == name:
            out.reject(msg, Reason.UNDECLARED_QUANTITY, f"the meter does not declare {name}", fld)
        else:
            out.reject(msg, Reason.UNKNOWN_QUANTITY, f"unknown quantity {name!r:.70}", fld)
    else:
        out.reject(msg, Reason.NOT_A_NUMBER, f"{_kind(value)} is not a reading", fld)


# -- SenML ----------------------------------------------------------------------------------
@dataclass(slots=True)
class _Base:
    """The base fields in force (RFC 8428 §4.6: they apply to this record and later ones)."""

    name: str = ""
    time: float = 0.0
    unit: str | None = None
    value: float = 0.0


def decode_senml(
    payload: bytes,
    msg: int,
    series_of: Mapping[str, int],
    out: Columns,
    *,
    meter: str,
    untimed: bool,
) -> None:
    """A SenML JSON pack: base fields resolved into each record (RFC 8428 §4.6), names
    bound to the topic's `meter` and mapped to quantities, units converted. A label ending
    in `_` (a must-understand extension, §4.4) rejects the whole pack."""
    doc = _load_or_reject(payload, msg, out)
    if doc is _FAILED:
        return
    if type(doc) is not list or not doc:
        out.reject(msg, Reason.SCHEMA, f"a SenML pack is a non-empty array, got {_kind(doc)}")
        return
    for i, rec in enumerate(doc):
        if type(rec) is dict:
            unknown = next((k for k in rec if k[-1:] == "_"), None)
            if unknown is not None:
                out.reject(
                    msg,
                    Reason.SCHEMA,
                    f"must-understand label {unknown!r:.40} is not supported (RFC 8428 §4.4)",
                    f"[{i}]",
                    sum(1 for r in doc if type(r) is dict and "v" in r) or 1,
                )
                return
    base = _Base()
    for i, rec in enumerate(doc):
        path = f"[{i}]"
        if type(rec) is not dict:
            out.reject(msg, Reason.SCHEMA, f"a SenML record is an object, got {_kind(rec)}", path)
            continue
        try:
            if "bn" in rec:
                base.name = _text(rec["bn"], "bn")
            if "bt" in rec:
                base.time = _finite(rec["bt"], "bt")
            if "bu" in rec:
                base.unit = _text(rec["bu"], "bu")
            if "bv" in rec:
                base.value = _finite(rec["bv"], "bv")
        except ValueError as exc:
            out.reject(msg, Reason.SCHEMA, str(exc), path)
            continue
        _senml_record(rec, path, base, msg, series_of, out, meter, untimed)


def _senml_quantity(
    full: str, path: str, msg: int, series_of: Mapping[str, int], out: Columns, meter: str
) -> tuple[str, int] | None:
    """The record's quantity and series, if its resolved name is valid, names the topic's
    meter (or no device at all) and a quantity the meter declares."""
    if _SENML_NAME.fullmatch(full) is None:
        out.reject(msg, Reason.SCHEMA, f"invalid SenML name {full!r:.70}", path)
        return None
    parts = [p for p in _NAME_PARTS.split(full) if p]
    short = parts[-1] if parts else ""
    fld = f"{path}.{short}"[:80]
    device = parts[-2] if len(parts) > 1 else None
    if device is not None and device != meter:
        out.reject(
            msg,
            Reason.WRONG_METER,
            f"record names device {device!r:.40}, but the topic is meter {meter!r}",
            fld,
        )
        return None
    quantity = canonical_quantity(short) if short else None
    if quantity is None:
        out.reject(msg, Reason.UNKNOWN_QUANTITY, f"unknown SenML name {full!r:.70}", fld)
        return None
    sidx = series_of.get(quantity, _NO_SERIES)
    if sidx == _NO_SERIES:
        out.reject(msg, Reason.UNDECLARED_QUANTITY, f"the meter does not declare {quantity}", fld)
        return None
    return quantity, sidx


def _senml_record(
    rec: dict[str, Any],
    path: str,
    base: _Base,
    msg: int,
    series_of: Mapping[str, int],
    out: Columns,
    meter: str,
    untimed: bool,
) -> None:
    if "v" not in rec:
        if any(k in rec for k in ("vs", "vb", "vd", "s")):
            out.reject(msg, Reason.NOT_A_NUMBER, "only numeric values (v) are readings", path)
        elif "n" in rec:
            out.reject(msg, Reason.SCHEMA, "record has no value", path)
        return  # a record holding only base fields is not a reading
    name = rec.get("n", "")
    if type(name) is not str:
        out.reject(msg, Reason.SCHEMA, "n must be a string", path + ".n")
        return
    found = _senml_quantity(base.name + name, path, msg, series_of, out, meter)
    if found is None:
        return
    quantity, sidx = found
    fld = f"{path}.{quantity}"
    unit = rec.get("u", base.unit)
    if unit is not None and type(unit) is not str:
        out.reject(msg, Reason.UNIT, "u must be a string", fld)
        return
    conv = conversion_for(quantity, unit)
    if conv is None:
        known = ", ".join(units_of(quantity))
        out.reject(msg, Reason.UNIT, f"unit {unit!r:.20} is not one of {known} for {quantity}", fld)
        return
    v = _number(rec["v"])
    if v is None:
        out.reject(msg, Reason.NOT_A_NUMBER, f"{_kind(rec['v'])} is not a reading", fld)
        return
    t = _number(rec.get("t", 0.0))
    ts_ms = None if t is None else _ms((t + base.time) * 1000)
    if ts_ms is None:
        out.reject(msg, Reason.BAD_TIME, f"t must be a number, got {rec.get('t')!r:.40}", fld)
        return
    if ts_ms < _SENML_RELATIVE_LIMIT * 1000:  # relative to "now" (RFC 8428 §4.5.3)
        if not untimed:
            out.reject(
                msg,
                Reason.NO_TIME,
                "relative SenML time: readings need an absolute time (bt or t ≥ 2**28 s)",
                fld,
            )
            return
        out.relative_rows.append(len(out.ts_ms))
    out.msg.append(msg)
    out.series_idx.append(sidx)
    out.ts_ms.append(ts_ms)
    out.values.append((v + base.value) * conv.scale + conv.offset)


def _printable(name: str) -> str:
    """A field name safe to log and print: as is when printable ASCII, else escaped."""
    if name.isascii() and name.isprintable():
        return name[:70]
    return ascii(name)[:70]


def _text(value: Any, key: str) -> str:
    if type(value) is not str:
        raise ValueError(f"{key} must be a string")
    return value


def _finite(value: Any, key: str) -> float:
    v = _number(value)
    if v is None or not math.isfinite(v):
        raise ValueError(f"{key} must be a finite number")
    return v


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return type(value).__name__
