"""Rule engine benchmark: 100,000 series, 20 rules of mixed types.

Prints the median time to scatter a 100,000-reading batch and of one full tick, the
memory per series, and the same for a per-series Python implementation of the same
rules (`bench/rules_naive.py`) run on the same readings, checking both emit the same
transitions. Then the backtest throughput on 30 simulated days of the example territory.

    /tmp/venv/bin/python bench/rules_engine.py [--minutes 25] [--naive-minutes 25]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rules_naive import NaiveEngine

from ecocluster.core.cluster import Meter, Organisation, RuleSpec, Site, Territory
from ecocluster.core.registry import Cluster
from ecocluster.core.types import ReadingBatch
from ecocluster.rules.engine import RuleEngine

T0 = 1_732_406_400_000  # 2024-11-24 00:00 UTC
MIN = 60_000
QUANTITIES = ("power_w", "flow_lpm", "temp_c", "co2_ppm")
CATEGORIES = ("office", "hotel", "school", "town_hall", "dairy")

RULES: list[dict[str, Any]] = [
    {
        "name": "power-high",
        "type": "threshold",
        "quantity": "power_w",
        "above": {"warning": 8000, "critical": 9500},
        "for": "2m",
    },
    {"name": "power-low", "type": "threshold", "quantity": "power_w", "below": 100, "clear": 200},
    {
        "name": "power-mean",
        "type": "threshold",
        "quantity": "power_w",
        "above": 7000,
        "window": "5m",
    },
    {
        "name": "power-max",
        "type": "threshold",
        "quantity": "power_w",
        "above": 9900,
        "window": "10m",
        "agg": "max",
        "match": {"category": "hotel"},
    },
    {"name": "power-band", "type": "threshold", "quantity": "power_w", "above": 9990, "below": 5},
    {
        "name": "site-power",
        "type": "threshold",
        "quantity": "power_w",
        "scope": "site",
        "above": 56000,
    },
    {
        "name": "org-power",
        "type": "threshold",
        "quantity": "power_w",
        "scope": "org",
        "above": 540000,
        "for": "3m",
    },
    {"name": "power-rise", "type": "rate", "quantity": "power_w", "window": "10m", "rises": 3500},
    {"name": "power-drop", "type": "rate", "quantity": "power_w", "window": "10m", "drops": 3500},
    {
        "name": "flow-high",
        "type": "threshold",
        "quantity": "flow_lpm",
        "above": 80,
        "for": "3m",
        "keep_firing_for": "2m",
    },
    {
        "name": "flow-burst",
        "type": "burst",
        "quantity": "flow_lpm",
        "jump": 40,
        "window": "5m",
        "baseline": "15m",
    },
    {"name": "flow-stuck", "type": "stuck", "quantity": "flow_lpm", "window": "10m"},
    {
        "name": "temp-high",
        "type": "threshold",
        "quantity": "temp_c",
        "above": 30,
        "window": "3m",
        "consecutive": 2,
    },
    {"name": "temp-low", "type": "threshold", "quantity": "temp_c", "below": 5, "for": "1m"},
    {"name": "temp-drop", "type": "rate", "quantity": "temp_c", "window": "5m", "drops": 6},
    {"name": "temp-stuck", "type": "stuck", "quantity": "temp_c", "window": "15m"},
    {
        "name": "co2-levels",
        "type": "threshold",
        "quantity": "co2_ppm",
        "above": {"info": 1000, "warning": 1500, "critical": 2000},
    },
    {
        "name": "co2-mean",
        "type": "threshold",
        "quantity": "co2_ppm",
        "above": 1200,
        "window": "15m",
        "min_coverage": 0.5,
        "match": {"category": "school"},
    },
    {"name": "meter-silent", "type": "absence", "after": "5m"},
    {"name": "co2-silent", "type": "absence", "quantity": "co2_ppm", "after": "3m"},
]
#: The two types the naive baseline does not implement (they need days of history to
#: fire): timed in a second run, vectorised only.
EXTRA_RULES: list[dict[str, Any]] = [
    {
        "name": "power-anomaly",
        "type": "anomaly",
        "quantity": "power_w",
        "z": 4,
        "min_history": "7d",
    },
    {"name": "night-leak", "type": "night_flow", "quantity": "flow_lpm", "limit": 2.0, "nights": 2},
]


def build_cluster(n_meters: int, rules_: list[dict[str, Any]] | None = None) -> Cluster:
    n_sites = max(1, n_meters // 10)
    n_orgs = max(1, n_sites // 10)
    orgs = tuple(Organisation(id=f"o{i}", name=f"O{i}", kind="public") for i in range(n_orgs))
    sites = tuple(
        Site(
            id=f"s{i}", org=f"o{i % n_orgs}", name=f"S{i}", category=CATEGORIES[i % 5], lat=0, lon=0
        )
        for i in range(n_sites)
    )
    meters = tuple(
        Meter(id=f"m{i}", site=f"s{i % n_sites}", quantities=list(QUANTITIES))
        for i in range(n_meters)
    )
    rules = tuple(RuleSpec.model_validate(r) for r in (RULES if rules_ is None else rules_))
    return Cluster(
        territory=Territory(id="t", name="T", timezone="UTC"),
        organisations=orgs,
        sites=sites,
        meters=meters,
        contacts=(),
        rules=rules,
        routes=(),
        escalations=(),
    )


def make_readings(cluster: Cluster, minutes: int, seed: int = 7) -> list[ReadingBatch]:
    """One integer-valued reading per series per minute, with injected troubles."""
    rng = np.random.default_rng(seed)
    n = len(cluster.series)
    q_idx = np.arange(n) % 4
    base = np.array([5000, 40, 20, 800])[q_idx]
    noise = np.array([400, 5, 2, 150])[q_idx]
    is_high = rng.random(n) < 0.01
    is_stuck = rng.random(n) < 0.01
    is_burst = (rng.random(n) < 0.01) & (q_idx == 1)
    meter_of = np.arange(n) // 4
    is_silent = np.isin(meter_of, rng.choice(n // 4, max(1, n // 400), replace=False))
    stuck_value = base + rng.integers(-noise, noise + 1)
    batches = []
    for m in range(minutes):
        values = base + rng.integers(-noise, noise + 1)
        if m >= 6:
            values = np.where(
                is_high, (base * 1.95).astype(np.int64) + rng.integers(0, 30, n), values
            )
        if m >= 18:
            values = np.where(is_burst, values + 60, values)
        values = np.where(is_stuck, stuck_value, values).astype(np.float64)
        keep = ~(is_silent & (m >= 3))
        idx = np.flatnonzero(keep)
        batches.append(
            ReadingBatch(
                cluster.series,
                idx,
                np.full(idx.size, T0 + m * MIN + 30_000, np.int64),
                values[idx],
                np.full(idx.size, np.nan),
            )
        )
    return batches


def key_of(t: Any) -> tuple[Any, ...]:
    return (t.rule, tuple(sorted(t.labels.items())), t.state, t.at_ms, str(t.severity))


def bench_engine(n_meters: int, minutes: int, naive_minutes: int) -> dict[str, float]:
    t_build = time.perf_counter()
    cluster = build_cluster(n_meters)
    engine = RuleEngine(cluster)
    batches = make_readings(cluster, minutes)
    print(
        f"setup: {len(cluster.series):,} series, {len(engine.kernels)} rules, "
        f"{sum(k.targets.n for k in engine.kernels):,} targets "
        f"({time.perf_counter() - t_build:.1f} s)"
    )
    scatter_s, tick_s, fast = [], [], []
    for m, batch in enumerate(batches):
        t = time.perf_counter()
        engine.ingest(batch)
        scatter_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        fast += engine.tick(T0 + (m + 1) * MIN)
        tick_s.append(time.perf_counter() - t)
    out = {
        "scatter_ms": statistics.median(scatter_s[1:]) * 1e3,
        "tick_ms": statistics.median(tick_s[1:]) * 1e3,
        "batch": float(statistics.median(len(b) for b in batches)),
        "bytes": engine.window.bytes_per_series(),
        "transitions": float(len(fast)),
    }
    print(
        f"vectorised: scatter {out['scatter_ms']:.1f} ms per {out['batch']:,.0f}-reading batch, "
        f"tick {out['tick_ms']:.1f} ms (medians of {minutes - 1}); {len(fast):,} transitions; "
        f"{out['bytes']:,.0f} bytes/series ({out['bytes'] / 1024:.2f} KiB)"
    )
    naive = NaiveEngine(cluster)
    n_scatter, n_tick, slow = [], [], []
    for m, batch in enumerate(batches[:naive_minutes]):
        t = time.perf_counter()
        naive.ingest(batch)
        n_scatter.append(time.perf_counter() - t)
        t = time.perf_counter()
        slow += naive.tick(T0 + (m + 1) * MIN)
        n_tick.append(time.perf_counter() - t)
    out["naive_scatter_ms"] = statistics.median(n_scatter[1:]) * 1e3
    out["naive_tick_ms"] = statistics.median(n_tick[1:]) * 1e3
    cutoff = T0 + naive_minutes * MIN
    fast_keys = sorted(map(str, (key_of(t) for t in fast if t.at_ms <= cutoff)))
    slow_keys = sorted(
        str((r, tuple(sorted(labels)), st, at, sev)) for r, labels, st, at, sev in slow
    )
    same = fast_keys == slow_keys
    print(
        f"naive:      scatter {out['naive_scatter_ms']:.1f} ms, tick {out['naive_tick_ms']:.1f} ms "
        f"(medians of {naive_minutes - 1}); {len(slow):,} transitions"
    )
    print(
        f"speed-up:   scatter {out['naive_scatter_ms'] / out['scatter_ms']:.0f}x, "
        f"tick {out['naive_tick_ms'] / out['tick_ms']:.0f}x; same transitions: {same}"
    )
    if not same:
        only_fast = set(fast_keys) - set(slow_keys)
        only_slow = set(slow_keys) - set(fast_keys)
        print(f"  MISMATCH: {len(only_fast)} only vectorised, {len(only_slow)} only naive")
        for k in sorted(only_fast)[:5]:
            print("   fast:", k)
        for k in sorted(only_slow)[:5]:
            print("   slow:", k)
    by_rule: dict[str, int] = {}
    for t in fast:
        by_rule[t.rule] = by_rule.get(t.rule, 0) + 1
    print("transitions by rule:", ", ".join(f"{r}={n}" for r, n in sorted(by_rule.items())))
    out["same"] = float(same)
    every_type = RuleEngine(build_cluster(n_meters, RULES + EXTRA_RULES))
    all_ticks = []
    for m, batch in enumerate(batches):
        every_type.ingest(batch)
        t = time.perf_counter()
        every_type.tick(T0 + (m + 1) * MIN)
        all_ticks.append(time.perf_counter() - t)
    out["tick_all_types_ms"] = statistics.median(all_ticks[1:]) * 1e3
    print(
        f"with anomaly + night_flow added ({len(every_type.kernels)} rules, all 7 types): "
        f"tick {out['tick_all_types_ms']:.1f} ms"
    )
    return out


def bench_anomaly(n_meters: int, minutes: int = 40) -> None:
    """The anomaly rule alone over every power series: median and worst tick over
    `minutes` of one reading per series per minute; the worst ticks are those that
    complete a 15-minute bucket and update the baselines of every series."""
    cluster = build_cluster(
        n_meters, [{"name": "anomaly", "type": "anomaly", "quantity": "power_w", "z": 4}]
    )
    engine = RuleEngine(cluster)
    ticks = []
    for m, batch in enumerate(make_readings(cluster, minutes)):
        engine.ingest(batch)
        t = time.perf_counter()
        engine.tick(T0 + (m + 1) * MIN)
        ticks.append(time.perf_counter() - t)
    print(
        f"anomaly rule alone ({engine.kernels[0].targets.n:,} targets): tick median "
        f"{statistics.median(ticks) * 1e3:.1f} ms, worst {max(ticks) * 1e3:.1f} ms "
        f"(a bucket completes: baselines updated) over {minutes} minutes"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--meters", type=int, default=25_000, help="4 series each")
    parser.add_argument("--minutes", type=int, default=25)
    parser.add_argument("--naive-minutes", type=int, default=25)
    parser.add_argument("--skip-backtest", action="store_true")
    args = parser.parse_args()
    bench_engine(args.meters, args.minutes, args.naive_minutes)
    bench_anomaly(args.meters)
    if not args.skip_backtest:
        from rules_backtest import bench_backtest

        bench_backtest()


if __name__ == "__main__":
    main()
