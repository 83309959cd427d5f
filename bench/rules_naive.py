"""A straightforward per-series Python implementation of the rule engine's semantics:
the baseline of `bench/rules_engine.py`, which checks both emit the same transitions.

One object per series keeps its readings in a deque; every tick loops over every rule
and every target in Python. It implements `threshold` (last/window, levels, band,
`clear`, `consecutive`, `min_coverage`, site/org sums), `rate`, `stuck`, `burst` and
`absence`, with the same state machine (`for`, `keep_firing_for`, flapping).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from ecocluster.core.registry import Cluster
from ecocluster.core.types import ReadingBatch, SeriesKey
from ecocluster.rules.catalog import parse_rules
from ecocluster.rules.config import ms
from ecocluster.rules.transitions import LEVEL_BY_SEVERITY, SEVERITY_BY_LEVEL
from ecocluster.rules.window import WindowConfig

NAN = float("nan")
_SCOPE_LABELS = {
    "series": ("org", "site", "meter", "category", "quantity"),
    "meter": ("org", "site", "meter", "category"),
    "site": ("org", "site", "category", "quantity"),
    "org": ("org", "quantity"),
    "territory": ("quantity",),
}


class Series:
    def __init__(self, labels: dict[str, str], keep_ms: int) -> None:
        self.labels = labels
        self.readings: deque[tuple[int, float]] = deque()
        self.last_ts = -1
        self.last_value = NAN
        self.keep_ms = keep_ms

    def add(self, ts: int, value: float) -> None:
        self.readings.append((ts, value))
        if ts >= self.last_ts:
            self.last_ts, self.last_value = ts, value
        while self.readings and self.readings[0][0] < ts - self.keep_ms:
            self.readings.popleft()

    def buckets(self, now: int, window_ms: int, cfg: WindowConfig) -> list[list[float]]:
        """Readings per bucket of the window, oldest first (the engine's bucket rules)."""
        res = (
            cfg.fine_res_ms
            if window_ms <= cfg.fine_res_ms * (cfg.fine_buckets - 1)
            else cfg.coarse_res_ms
        )
        k = max(1, -(-window_ms // res))
        end = (now - 1) // res
        out: list[list[float]] = [[] for _ in range(k)]
        for ts, value in self.readings:
            b = ts // res
            if end - k < b <= end:
                out[b - (end - k + 1)].append(value)
        return out


class Target:
    def __init__(self, labels: dict[str, str], series: list[Series]) -> None:
        self.labels, self.series = labels, series
        self.state, self.level, self.since, self.last_true = "ok", 0, 0, 0
        self.value, self.threshold = NAN, NAN
        self.fires: deque[int] = deque()
        self.flapping = False
        self.reference = NAN


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else NAN


class NaiveEngine:
    def __init__(self, cluster: Cluster, cfg: WindowConfig | None = None) -> None:
        self.cfg = cfg or WindowConfig()
        self.rules = parse_rules(cluster)
        self.series: dict[SeriesKey, Series] = {}
        for key in cluster.series:
            site = cluster.site_by_id[key.site]
            labels = {
                "org": key.org,
                "site": key.site,
                "meter": key.meter,
                "quantity": key.quantity,
                "category": site.category,
            }
            self.series[key] = Series(labels, 2 * 3_600_000)
        self.targets: list[list[Target]] = [self._targets(r) for r in self.rules]
        self.started: int | None = None

    def _targets(self, rule: Any) -> list[Target]:
        scope = getattr(rule, "scope", "series")
        if rule.type == "absence":
            scope = "series" if rule.quantity else "meter"
        groups: dict[tuple[str, ...], list[Series]] = {}
        for s in self.series.values():
            wanted = dict(rule.match)
            if rule.quantity:
                wanted["quantity"] = rule.quantity
            if all(s.labels.get(k) == v for k, v in wanted.items()):
                key = tuple(s.labels[n] for n in _SCOPE_LABELS[scope])
                groups.setdefault(key, []).append(s)
        return [
            Target(dict(zip(_SCOPE_LABELS[scope], k, strict=True)), ss) for k, ss in groups.items()
        ]

    def ingest(self, batch: ReadingBatch) -> None:
        for i in range(len(batch)):
            key = batch.series[int(batch.series_idx[i])]
            self.series[key].add(int(batch.ts_ms[i]), float(batch.values[i]))

    # -- per-type verdicts: (level, value, threshold) ------------------------------------
    def _threshold(self, rule: Any, t: Target, now: int) -> tuple[int, float, float]:
        def limits(side: Any) -> list[tuple[int, float]]:
            if side is None:
                return []
            if isinstance(side, dict):
                return sorted((LEVEL_BY_SEVERITY[s], float(v)) for s, v in side.items())
            return [(LEVEL_BY_SEVERITY[rule.severity], float(side))]

        above, below = limits(rule.above), limits(rule.below)
        n_windows = rule.consecutive or 1
        agg = rule.agg or ("mean" if rule.window else "last")
        xs = []
        for j in range(n_windows):
            per_series = []
            for s in t.series:
                if rule.window is None or agg == "last":
                    fresh = s.last_ts != -1 and s.last_ts >= now - ms(rule.stale)
                    per_series.append(s.last_value if fresh else NAN)
                    continue
                w = ms(rule.window)
                bk = s.buckets(now - (n_windows - 1 - j) * w, w, self.cfg)
                flat = [v for b in bk for v in b]
                x = {
                    "mean": _mean(flat),
                    "min": min(flat, default=NAN),
                    "max": max(flat, default=NAN),
                }[agg]
                if rule.min_coverage > 0 and sum(1 for b in bk if b) / len(bk) < rule.min_coverage:
                    x = NAN
                per_series.append(x)
            known = [x for x in per_series if not math.isnan(x)]
            if t.labels.keys() != set(_SCOPE_LABELS["series"]):
                xs.append(_reduce(known, rule.aggregate))
            else:
                xs.append(per_series[0])
        levels, thr_last = [], NAN
        for j, x in enumerate(xs):
            level, thr = 0, NAN
            for code, lim in above:
                if x > lim:
                    level, thr = max(level, code), lim if max(level, code) == code else thr
            for code, lim in below:
                if x < lim:
                    level, thr = max(level, code), lim if max(level, code) == code else thr
            levels.append(level if not math.isnan(x) else 0)
            if j == n_windows - 1:
                thr_last = thr
        level = min(levels)
        x = xs[-1]
        if math.isnan(thr_last):
            thr_last = (above or below)[0][1]
        if rule.clear is not None and t.state == "firing" and level == 0:
            beyond = x > rule.clear if rule.above is not None else x < rule.clear
            if beyond:
                level = t.level
        if all(math.isnan(v) for v in xs):
            level = -1
        return level, x, thr_last

    def _rate(self, rule: Any, t: Target, now: int) -> tuple[int, float, float]:
        bk = t.series[0].buckets(now, ms(rule.window), self.cfg)
        filled = [i for i, b in enumerate(bk) if b]
        x = _mean(bk[filled[-1]]) - _mean(bk[filled[0]]) if len(filled) >= 2 else NAN
        is_true, thr = False, NAN
        if rule.rises is not None:
            is_true |= x >= rule.rises
            thr = rule.rises
        if rule.drops is not None:
            if x <= -rule.drops:
                is_true, thr = True, -rule.drops
            elif math.isnan(thr):
                thr = -rule.drops
        return self._single(rule, is_true, x, thr)

    def _stuck(self, rule: Any, t: Target, now: int) -> tuple[int, float, float]:
        flat = [v for b in t.series[0].buckets(now, ms(rule.window), self.cfg) for v in b]
        span = max(flat) - min(flat) if len(flat) >= rule.min_readings else NAN
        return self._single(rule, span <= rule.tolerance, span, rule.tolerance)

    def _burst(self, rule: Any, t: Target, now: int) -> tuple[int, float, float]:
        cfg = self.cfg
        w, total = ms(rule.window), ms(rule.window) + ms(rule.baseline)
        res = (
            cfg.fine_res_ms
            if total <= cfg.fine_res_ms * (cfg.fine_buckets - 1)
            else cfg.coarse_res_ms
        )
        k_recent = max(1, -(-w // res))
        k_total = max(k_recent + 1, -(-total // res))
        means = [_mean(b) for b in t.series[0].buckets(now, k_total * res, cfg)]
        before = [m for m in means[:-k_recent] if not math.isnan(m)]
        recent = [m for m in means[-k_recent:] if not math.isnan(m)]
        ref_now = sum(before) / len(before) if before else NAN
        floor = min(recent) if recent and len(recent) * 2 >= k_recent else NAN
        firing = t.state == "firing"
        ref = t.reference if firing and not math.isnan(t.reference) else ref_now
        need = ref + (rule.jump / 2 if firing else rule.jump)
        is_true = floor >= need
        t.reference = ref if firing or is_true else NAN
        return self._single(rule, is_true, floor - ref, need - ref)

    def _absence(self, rule: Any, t: Target, now: int) -> tuple[int, float, float]:
        seen = [s.last_ts for s in t.series if s.last_ts != -1]
        since = max(seen) if seen else self.started
        silent_s = (now - since) / 1000.0
        after = ms(rule.after) if rule.after else 900_000
        return self._single(rule, silent_s * 1000.0 >= after, silent_s, after / 1000.0)

    def _single(self, rule: Any, is_true: bool, x: float, thr: float) -> tuple[int, float, float]:
        if math.isnan(x):
            return -1, x, thr
        return (LEVEL_BY_SEVERITY[rule.severity] if is_true else 0), x, thr

    # -- the state machine -------------------------------------------------------------
    def tick(self, now: int) -> list[tuple[str, frozenset[tuple[str, str]], str, int, str]]:
        if self.started is None:
            self.started = now
        out = []
        for rule, targets in zip(self.rules, self.targets, strict=True):
            verdict = getattr(self, "_" + rule.type)
            for t in targets:
                level, x, thr = verdict(rule, t, now)
                event = self._step(rule, t, level, x, thr, now)
                if event:
                    sev = SEVERITY_BY_LEVEL[t.level] or rule.severity
                    labels = frozenset(
                        {**t.labels, "rule": rule.name, "severity": str(sev)}.items()
                    )
                    out.append((rule.name, labels, event, now, str(sev)))
        return out

    def _step(self, rule: Any, t: Target, level: int, x: float, thr: float, now: int) -> str | None:
        if level >= 0:
            t.value, t.threshold = x, thr
        is_true, is_false = level > 0, level == 0
        old = t.state
        if old == "ok" and is_true:
            t.since = now
        if is_true:
            t.last_true = now
        event = None
        if (
            (old == "pending" or (old == "ok" and is_true))
            and is_true
            and now - t.since >= ms(rule.for_)
        ):
            event, t.state = "firing", "firing"
            self._count_fire(rule, t, now)
        elif old == "ok" and is_true:
            event, t.state = "pending", "pending"
        elif old == "pending" and is_false:
            event, t.state = "inactive", "ok"
        elif old == "firing" and is_true and level != t.level:
            event = "firing"
        elif old == "firing" and is_false:
            hold = ms(rule.keep_firing_for)
            if t.flapping:
                hold = max(hold, ms(rule.flapping.hold))
            if now - t.last_true > hold:
                event, t.state, t.flapping = "resolved", "ok", False
        if is_true:
            t.level = level
        return event

    def _count_fire(self, rule: Any, t: Target, now: int) -> None:
        k = rule.flapping.count
        if k <= 0:
            return
        t.fires.append(now)
        while len(t.fires) > k:
            t.fires.popleft()
        if len(t.fires) >= k and now - t.fires[0] <= ms(rule.flapping.window):
            t.flapping = True


def _reduce(known: list[float], how: str) -> float:
    if not known:
        return NAN
    if how == "sum":
        return sum(known)
    if how == "mean":
        return sum(known) / len(known)
    return max(known) if how == "max" else min(known)
