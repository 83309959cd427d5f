"""Payload codecs: native JSON and SenML JSON (RFC 8428) → rows of a `Columns` accumulator.

Decoding is per reading: a bad reading becomes a `Rejection` and its good neighbours in the
same payload still count. Values are only type-checked here (numbers, not bools or
strings); finiteness and time bounds are checked afterwards on whole arrays
(`validate.check_rows`). The hot path is one `orjson.loads` and a dict walk per message;
the stdlib parser is the fallback so that a `NaN` literal rejects one reading, not the
payload.
"""

from __future__ import annotations

import json
import math
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
    """Rows decoded from a burst of messages; `msg[i]` is the index of row i's message."""

    msg: list[int] = field(default_factory=list)
    series_idx: list[int] = field(default_factory=list)
    ts_ms: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    def reject(self, msg: int, reason: Reason, message: str, fld: str = "", count: int = 1) -> None:
        self.rejections.append(Rejection(msg, reason, message, fld, count))

    def __len__(self) -> int:
        return len(self.ts_ms)


def _loads(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        # NaN / Infinity literals are not JSON; the stdlib reads them so that only the
        # reading that holds one is rejected (as not finite).
        return json.loads(payload)


def _load_or_reject(payload: bytes, msg: int, out: Columns) -> Any:
    try:
        return _loads(payload)
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


# -- native ---------------------------------------------------------------------------------
def decode_native(
    payload: bytes, now_ms: int, msg: int, series_of: Mapping[str, int], out: Columns
) -> None:
    """`{"ts": ms, "m": {quantity: value, …}}` or a list of such objects.

    `series_of` maps the meter's declared quantities to series indices."""
    doc = _load_or_reject(payload, msg, out)
    if doc is _FAILED:
        return
    if type(doc) is dict:
        _native_object(doc, "", now_ms, msg, series_of, out)
    elif type(doc) is list:
        if not doc:
            out.reject(msg, Reason.SCHEMA, "empty array: no readings")
        for i, item in enumerate(doc):
            _native_object(item, f"[{i}]", now_ms, msg, series_of, out)
    else:
        out.reject(msg, Reason.SCHEMA, f"expected an object or an array, got {_kind(doc)}")


def _native_object(
    obj: Any, path: str, now_ms: int, msg: int, series_of: Mapping[str, int], out: Columns
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
        ts_ms = now_ms
    else:
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
        ts_ms = int(t)
    for name, value in readings.items():
        sidx = series_of.get(name, _NO_SERIES)
        v = _number(value)
        if sidx == _NO_SERIES or v is None:
            _reject_reading(name, value, sidx, f"{path}.m.{name}", msg, out)
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
def decode_senml(
    payload: bytes, now_ms: int, msg: int, series_of: Mapping[str, int], out: Columns
) -> None:
    """A SenML JSON pack: base fields resolved into each record (RFC 8428 §4.6), names
    mapped to quantities, units converted, relative times resolved against `now_ms`."""
    doc = _load_or_reject(payload, msg, out)
    if doc is _FAILED:
        return
    if type(doc) is not list or not doc:
        out.reject(msg, Reason.SCHEMA, f"a SenML pack is a non-empty array, got {_kind(doc)}")
        return
    base_name, base_time, base_unit, base_value = "", 0.0, None, 0.0
    for i, rec in enumerate(doc):
        path = f"[{i}]"
        if type(rec) is not dict:
            out.reject(msg, Reason.SCHEMA, f"a SenML record is an object, got {_kind(rec)}", path)
            continue
        # Base fields apply to this record and every later one (RFC 8428 §4.6).
        try:
            if "bn" in rec:
                base_name = _text(rec["bn"], "bn")
            if "bt" in rec:
                base_time = _finite(rec["bt"], "bt")
            if "bu" in rec:
                base_unit = _text(rec["bu"], "bu")
            if "bv" in rec:
                base_value = _finite(rec["bv"], "bv")
        except ValueError as exc:
            out.reject(msg, Reason.SCHEMA, str(exc), path)
            continue
        _senml_record(
            rec, path, base_name, base_time, base_unit, base_value, now_ms, msg, series_of, out
        )


def _senml_record(
    rec: dict[str, Any],
    path: str,
    base_name: str,
    base_time: float,
    base_unit: str | None,
    base_value: float,
    now_ms: int,
    msg: int,
    series_of: Mapping[str, int],
    out: Columns,
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
    full = base_name + name
    short = full.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
    quantity = canonical_quantity(short) if short else None
    fld = f"{path}.{short or full}"[:80]
    if quantity is None:
        out.reject(msg, Reason.UNKNOWN_QUANTITY, f"unknown SenML name {full!r:.70}", fld)
        return
    sidx = series_of.get(quantity, _NO_SERIES)
    if sidx == _NO_SERIES:
        out.reject(msg, Reason.UNDECLARED_QUANTITY, f"the meter does not declare {quantity}", fld)
        return
    unit = rec.get("u", base_unit)
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
    t_raw = rec.get("t", 0.0)
    t = _number(t_raw)
    if t is None or not math.isfinite(t):
        out.reject(msg, Reason.BAD_TIME, f"t must be a number, got {t_raw!r:.40}", fld)
        return
    t += base_time
    ts_ms = round(t * 1000) if t >= _SENML_RELATIVE_LIMIT else now_ms + round(t * 1000)
    if abs(ts_ms) > _INT64_MAX:
        out.reject(msg, Reason.BAD_TIME, "time out of range", fld)
        return
    out.msg.append(msg)
    out.series_idx.append(sidx)
    out.ts_ms.append(ts_ms)
    out.values.append((v + base_value) * conv.scale + conv.offset)


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
