"""The broker-free core: readings of every simulated meter over a time range, in columns.

`Generator` walks simulated time in chunks; for each chunk and meter it computes the
physical signals on the meter's base grid (numpy over time), applies the faults,
integrates the registers, samples each quantity at its own interval and rounds it the
way a device would. State carried between chunks is small and explicit: register
values, register offsets after resets, values held by stuck sensors. Because the noise
is counter-based (`noise.py`), the chunk size never changes a value.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ecocluster.core.types import FloatArray, IntArray, ReadingBatch, SeriesKey

from .faults import HOSTILE_IDS, MALFORMED_VARIANTS, Fault, apply_physical
from .localtime import local_time
from .noise import uniform
from .plan import MeterSpec, SimPlan
from .profiles import signals
from .profiles.signals import RATE_OF_REGISTER

__all__ = ["DECIMALS", "DeviceEvent", "Generator", "SimBatch"]

#: Decimals a device reports per quantity (registers to the Wh and the litre).
DECIMALS = {
    "energy_kwh": 3,
    "water_m3": 3,
    "power_w": 1,
    "flow_lpm": 2,
    "pm10_ugm3": 1,
    "pm25_ugm3": 1,
    "no2_ugm3": 1,
    "o3_ugm3": 1,
    "so2_ugm3": 1,
    "co_mgm3": 2,
    "co2_ppm": 0,
    "temp_c": 2,
    "rh_pct": 1,
}
#: Register increment per step: rate x step_ms x factor.
_REGISTER_FACTOR = {"energy_kwh": 1.0 / 3.6e9, "water_m3": 1.0 / 60_000.0 / 1000.0}
_EMPTY_I = np.empty(0, np.int64)
_EMPTY_F = np.empty(0, np.float64)


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """Something a device sends that is not a reading: a status change (`online`),
    a malformed payload (`variant`), a reading under a hostile id (`site`/`meter`)."""

    ts_ms: int
    kind: str  # "status" | "malformed" | "hostile"
    meter_idx: int
    site: str
    meter: str
    online: bool | None = None
    variant: str | None = None
    fault_id: str = ""


@dataclass(frozen=True, slots=True)
class SimBatch:
    """Readings of [start_ms, end_ms), sorted by time then series.

    `ts_ms` is the true time of a reading; `sent_ts_ms` what the device writes in its
    payload (different only under `clock_skew`). `truth` holds the ground-truth records
    of the faults that start in this batch."""

    series: tuple[SeriesKey, ...]
    series_meter: IntArray
    start_ms: int
    end_ms: int
    series_idx: IntArray
    ts_ms: IntArray
    sent_ts_ms: IntArray
    values: FloatArray
    events: tuple[DeviceEvent, ...]
    truth: tuple[dict[str, Any], ...]

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])

    def to_reading_batch(self) -> ReadingBatch:
        """As the shared `ReadingBatch` (device timestamps, no deltas), e.g. for rules."""
        return ReadingBatch(
            self.series,
            self.series_idx,
            self.sent_ts_ms,
            self.values,
            np.full(len(self), np.nan),
        )

    def rows(self) -> Iterator[tuple[str, str, str, int, float]]:
        """(site, meter, quantity, ts_ms, value) per reading: slow, for tests and glue."""
        for i, ts, v in zip(
            self.series_idx.tolist(), self.sent_ts_ms.tolist(), self.values.tolist(), strict=True
        ):
            key = self.series[i]
            yield key.site, key.meter, key.quantity, ts, v


class Generator:
    """Readings from `start_ms` on, one chunk per `advance(end_ms)` call.

    gen = Generator(plan, faults, start_ms=t0)
    for batch in gen.batches(t0 + 86_400_000):
        ...
    """

    def __init__(self, plan: SimPlan, faults: Sequence[Fault] = (), *, start_ms: int) -> None:
        self.plan = plan
        self.faults = tuple(faults)
        self.start_ms = int(start_ms)
        self.cursor_ms = int(start_ms)
        self._by_meter: dict[int, list[Fault]] = defaultdict(list)
        for f in self.faults:
            self._by_meter[f.meter_idx].append(f)
        self._register: dict[tuple[int, str], float] = {}
        self._offset: dict[tuple[int, str], float] = {}
        self._held: dict[str, float] = {}
        self._done: set[str] = set()
        self._reported: set[str] = set()
        for spec in plan.meters:
            for q in spec.quantities:
                if q in _REGISTER_FACTOR:
                    top = 90_000.0 if q == "energy_kwh" else 9_000.0
                    u = float(uniform(spec.key ^ 0xF0, np.array([len(q)]))[0])
                    self._register[(spec.index, q)] = round(top * (0.02 + 0.98 * u), 3)

    def batches(self, end_ms: int, chunk_ms: int = 3_600_000) -> Iterator[SimBatch]:
        """Batches up to `end_ms`, cut at multiples of `chunk_ms` (absolute time)."""
        while self.cursor_ms < end_ms:
            nxt = min(end_ms, (self.cursor_ms // chunk_ms + 1) * chunk_ms)
            yield self.advance(nxt)

    def advance(self, end_ms: int) -> SimBatch:
        c0, c1 = self.cursor_ms, int(end_ms)
        parts = [self._meter_chunk(spec, c0, c1) for spec in self.plan.meters]
        self.cursor_ms = c1
        sidx = np.concatenate([p[0] for p in parts]) if parts else _EMPTY_I
        ts = np.concatenate([p[1] for p in parts]) if parts else _EMPTY_I
        sent = np.concatenate([p[2] for p in parts]) if parts else _EMPTY_I
        vals = np.concatenate([p[3] for p in parts]) if parts else _EMPTY_F
        order = np.lexsort((sidx, ts))
        truth = []
        for f in self.faults:
            if f.id not in self._reported and f.start_ms < c1:
                self._reported.add(f.id)
                truth.append(f.record())
        return SimBatch(
            series=self.plan.series,
            series_meter=self.plan.series_meter,
            start_ms=c0,
            end_ms=c1,
            series_idx=sidx[order],
            ts_ms=ts[order],
            sent_ts_ms=sent[order],
            values=vals[order],
            events=tuple(sorted(self._events(c0, c1), key=lambda e: (e.ts_ms, e.meter_idx))),
            truth=tuple(truth),
        )

    # -- one meter -------------------------------------------------------------------------
    def _meter_chunk(
        self, spec: MeterSpec, c0: int, c1: int
    ) -> tuple[IntArray, IntArray, IntArray, FloatArray]:
        step, phase = spec.step_ms, spec.phase_ms
        per = [iv // step for iv in spec.intervals_ms]
        lead = max(per) - 1
        j0, j1 = -((phase - c0) // step), -((phase - c1) // step)
        if j1 <= j0:
            return _EMPTY_I, _EMPTY_I, _EMPTY_I, _EMPTY_F
        steps = np.arange(j0 - lead, j1, dtype=np.int64)
        t = phase + steps * step
        faults = self._by_meter.get(spec.index, [])
        phys = signals(spec, local_time(t, self.plan.timezone), steps, self.plan.seed)
        if faults:
            apply_physical(faults, t, phys)
        t_in, steps_in = t[lead:], steps[lead:]
        registers = {
            q: self._integrate(spec, q, phys[RATE_OF_REGISTER[q]][lead:] * step, t_in, faults)
            for q in spec.quantities
            if q in RATE_OF_REGISTER
        }
        out_s, out_t, out_v = [], [], []
        for qi, (q, m) in enumerate(zip(spec.quantities, per, strict=True)):
            sel = np.flatnonzero(steps_in % m == 0)
            if sel.size == 0:
                continue
            if q in registers:
                vals = registers[q][sel]
            elif m > 1 and q in ("power_w", "flow_lpm"):
                csum = np.concatenate(([0.0], np.cumsum(phys[q])))
                vals = (csum[sel + lead + 1] - csum[sel + lead + 1 - m]) / m
            else:
                vals = phys[q][sel + lead]
            vals = np.round(vals, DECIMALS[q])
            ts = t_in[sel]
            for f in faults:
                if f.kind == "stuck" and f.quantity == q:
                    self._hold(f, ts, vals)
            out_s.append(np.full(sel.size, spec.first_series + qi, np.int64))
            out_t.append(ts)
            out_v.append(vals)
        if not out_t:
            return _EMPTY_I, _EMPTY_I, _EMPTY_I, _EMPTY_F
        sidx, ts, vals = np.concatenate(out_s), np.concatenate(out_t), np.concatenate(out_v)
        keep = np.ones(ts.shape, dtype=bool)
        sent = ts.copy()
        for f in faults:
            if f.kind == "dropout" or f.kind == "meter_replacement":
                keep &= ~f.covers(ts)
            elif f.kind == "clock_skew":
                inside = f.covers(ts)
                sent[inside] += int(f.params["offset_s"] * 1000)
        return sidx[keep], ts[keep], sent[keep], vals[keep]

    def _integrate(
        self, spec: MeterSpec, q: str, rate_x_ms: FloatArray, t_in: IntArray, faults: list[Fault]
    ) -> FloatArray:
        key = (spec.index, q)
        cum = self._register[key] + np.cumsum(rate_x_ms * _REGISTER_FACTOR[q])
        self._register[key] = float(cum[-1]) if cum.size else self._register[key]
        reported = cum + self._offset.get(key, 0.0)
        for f in faults:
            if f.quantity != q or f.id in self._done:
                continue
            if f.kind == "counter_reset":
                at, value = f.start_ms, float(f.params["value"])
            elif f.kind == "meter_replacement":
                at, value = f.end_ms, float(f.params["new_initial"])
            else:
                continue
            k = int(np.searchsorted(t_in, at, side="left"))
            if k < t_in.size:
                delta = value - reported[k]
                reported[k:] += delta
                self._offset[key] = self._offset.get(key, 0.0) + delta
                self._done.add(f.id)
        return reported

    def _hold(self, f: Fault, ts: IntArray, vals: FloatArray) -> None:
        inside = f.covers(ts)
        if not inside.any():
            return
        if f.id not in self._held:
            self._held[f.id] = float(vals[np.flatnonzero(inside)[0]])
        vals[inside] = self._held[f.id]

    # -- non-reading messages ----------------------------------------------------------------
    def _events(self, c0: int, c1: int) -> Iterator[DeviceEvent]:
        for f in self.faults:
            if f.kind == "dropout":
                if c0 <= f.start_ms < c1:
                    yield DeviceEvent(f.start_ms, "status", f.meter_idx, f.site, f.meter, False)
                if c0 <= f.end_ms < c1:
                    yield DeviceEvent(f.end_ms, "status", f.meter_idx, f.site, f.meter, True)
            elif f.kind in ("malformed", "hostile_ids"):
                every = int(f.params["every_s"] * 1000)
                first = max(0, -((f.start_ms - c0) // every))
                t = f.start_ms + first * every
                while t < min(c1, f.end_ms):
                    n = (t - f.start_ms) // every
                    if f.kind == "malformed":
                        variants = f.params.get("variants") or MALFORMED_VARIANTS
                        yield DeviceEvent(
                            t, "malformed", f.meter_idx, f.site, f.meter,
                            variant=variants[n % len(variants)], fault_id=f.id,
                        )  # fmt: skip
                    else:
                        hostile = HOSTILE_IDS[n % len(HOSTILE_IDS)]
                        site, meter = (hostile, f.meter) if n % 2 else (f.site, hostile)
                        yield DeviceEvent(t, "hostile", f.meter_idx, site, meter, fault_id=f.id)
                    t += every
