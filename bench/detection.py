"""Detection quality: every shipped simulator scenario through the rule engine, scored
against the simulator's ground truth.

Readings come from the simulator's broker-free API (`firmware_sim.generate`), encoded as
the MQTT messages the simulator would publish (`firmware_sim.Encoder`) and passed through
ingest's pure core (`ingest.pipeline.prepare`: topic routing, decoding, validation; no
broker, no store), one burst per minute of simulated time, then into the engine in event
time with one tick per minute. `--direct` skips ingest and feeds ReadingBatches. Before
each scenario, `--warmup` days of normal operation (no faults; fed directly) train the
hour-of-week baselines.

Prints, per fault kind: recall, precision, false alarms per 100 meter-days, median and p95
time-to-detect. Faults that are ingest's job (clock_skew, malformed, hostile_ids) and
register faults (counter_reset, meter_replacement: handled by ingest's delta logic, not by
value rules) are listed but not scored.

    /tmp/venv/bin/python bench/detection.py [--seed 1] [--warmup 14]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ecocluster.core.cluster import RuleSpec
from ecocluster.core.registry import Cluster, load_cluster
from ecocluster.core.types import DeviceStatus
from ecocluster.ingest.mqtt import Inbound
from ecocluster.ingest.pipeline import Limits, prepare
from ecocluster.ingest.validate import TopicRouter
from ecocluster.rules.backtest import Episode, EpisodeBook, replay
from ecocluster.rules.engine import RuleEngine
from ecocluster.sim import Encoder, build_plan, generate, ground_truth, load_scenario

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "firmware-sim" / "scenarios"
TICK_MS = 60_000
DAY_MS = 86_400_000

#: The rule set scored here: deploy/cluster.example.yaml's rules in this engine's fields.
RULES: list[dict[str, Any]] = [
    {
        "name": "power-overload",
        "type": "threshold",
        "quantity": "power_w",
        "above": "contracted",
        "for": "1m",
        "severity": "critical",
    },
    {
        "name": "power-spike",
        "type": "burst",
        "quantity": "power_w",
        "window": "1m",
        "baseline": "15m",
        "factor": 3,
        "jump": 5000,
        "severity": "info",
        "match": {"category": "office"},
    },
    {
        "name": "pm10-daily-limit",
        "type": "threshold",
        "quantity": "pm10_ugm3",
        "above": 50,
        "window": "24h",
        "min_coverage": 0.75,
        "match": {"category": "air_station"},
    },
    {
        "name": "no2-hourly-limit",
        "type": "threshold",
        "quantity": "no2_ugm3",
        "above": 200,
        "window": "1h",
        "min_coverage": 0.75,
        "severity": "critical",
        "match": {"category": "air_station"},
    },
    {
        "name": "night-flow-leak",
        "type": "night_flow",
        "quantity": "flow_lpm",
        "limit": 2.0,
        "nights": 1,
        "match": {"category": "town_hall"},
    },
    {
        "name": "pipe-burst",
        "type": "burst",
        "quantity": "flow_lpm",
        "jump": 200,
        "window": "5m",
        "baseline": "30m",
        "severity": "critical",
        "match": {"org": "acque-appennino"},
    },
    {
        "name": "air-sensor-stuck",
        "type": "stuck",
        "quantity": "pm10_ugm3",
        "window": "2h",
        "match": {"category": "air_station"},
    },
    {"name": "data-absence", "type": "absence", "after": "15m"},
]
#: Which rules detect which fault kind, and how late a detection may come (its window
#: plus one tick, or the night plus the bucket lag for night flow).
DETECTORS: dict[str, dict[str, int]] = {
    "overload": {"power-overload": 60_000 + TICK_MS},
    "spike": {"power-spike": 60_000 + TICK_MS},
    "air_episode": {"pm10-daily-limit": DAY_MS + TICK_MS, "no2-hourly-limit": 3_600_000 + TICK_MS},
    "leak": {"night-flow-leak": DAY_MS + 30 * 60_000 + TICK_MS},
    "burst": {"pipe-burst": 5 * 60_000 + TICK_MS},
    "stuck": {"air-sensor-stuck": 2 * 3_600_000 + TICK_MS},
    "dropout": {"data-absence": 15 * 60_000 + TICK_MS},
}
NOT_SCORED = {
    "clock_skew": "ingest (timestamp validation)",
    "malformed": "ingest (payload rejection)",
    "hostile_ids": "ingest (id validation)",
    "counter_reset": "ingest (register deltas)",
    "meter_replacement": "ingest (register deltas)",
}


def with_rules(cluster: Cluster) -> Cluster:
    return dataclasses.replace(cluster, rules=tuple(RuleSpec.model_validate(r) for r in RULES))


def run(
    cluster: Cluster,
    start_ms: int,
    end_ms: int,
    *,
    seed: int,
    scenario: Path | None,
    engine: RuleEngine,
) -> list[Any]:
    transitions: list[Any] = []
    for sim in generate(
        cluster, start_ms, end_ms, seed=seed, scenario=scenario, chunk=timedelta(hours=24)
    ):
        rb = sim.to_reading_batch()
        rows = engine.rows_of(rb)
        order = np.argsort(rb.ts_ms, kind="stable")
        statuses = [
            DeviceStatus(e.site, e.meter, bool(e.online), e.ts_ms)
            for e in sim.events
            if e.kind == "status"
        ]
        transitions += replay(
            engine,
            rows[order],
            rb.ts_ms[order],
            rb.values[order],
            sim.start_ms,
            sim.end_ms,
            TICK_MS,
            statuses,
        )
    return transitions


def run_via_ingest(
    cluster: Cluster, start_ms: int, end_ms: int, *, seed: int, scenario: Path, engine: RuleEngine
) -> tuple[list[Any], dict[str, int]]:
    """The same run, but as MQTT messages (the simulator's encoder) through ingest's pure
    core (`ingest.pipeline.prepare`: topic routing, decoding, validation), one burst of
    messages per tick, received at their simulated time. Returns (transitions, ingest counts)."""
    plan = build_plan(cluster, seed=seed)
    encoder = Encoder(plan, prefix="eco")
    router = TopicRouter(cluster, "eco")
    limits = Limits(max_payload_bytes=64 * 1024, max_future_ms=300_000, max_age_ms=400 * DAY_MS)
    transitions: list[Any] = []
    counts = {"messages": 0, "readings": 0, "rejected": 0}
    for sim in generate(
        plan, start_ms, end_ms, seed=seed, scenario=scenario, chunk=timedelta(hours=24)
    ):
        messages = encoder.messages(sim)
        due = np.fromiter((m.due_ms for m in messages), np.int64, len(messages))
        tick_ends = np.arange(sim.start_ms + TICK_MS, sim.end_ms + TICK_MS, TICK_MS)
        cuts = np.searchsorted(due, tick_ends, side="left").tolist()
        lo = 0
        for now_ms, hi in zip(tick_ends.tolist(), cuts, strict=True):
            if hi > lo:
                burst = [
                    Inbound(m.topic, m.payload, i, 1, m.due_ms, 0)
                    for i, m in enumerate(messages[lo:hi])
                ]
                prepared = prepare(burst, router, cluster.series, limits, now_ms=now_ms)
                counts["messages"] += len(burst)
                counts["readings"] += len(prepared.batch)
                counts["rejected"] += prepared.rejected_readings
                engine.ingest(prepared.batch)
                for status in prepared.statuses:
                    engine.set_status(status)
            lo = hi
            transitions += engine.tick(now_ms)
    return transitions, counts


def episodes_of(transitions: list[Any]) -> list[Episode]:
    book = EpisodeBook()
    for t in transitions:
        book.add(t)
    return book.all()


def _meter_of(ep: Episode) -> tuple[str, str]:
    labels = dict(part.split("=", 1) for part in ep.target.split(","))
    return labels.get("site", ""), labels.get("meter", "")


def score(
    scenario: str, truth: list[dict[str, Any]], episodes: list[Episode], meter_days: float
) -> list[dict[str, Any]]:
    rows = []
    used: set[int] = set()
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for rec in truth:
        by_kind.setdefault(rec["kind"], []).append(rec)
    for kind, detectors in DETECTORS.items():
        faults = by_kind.get(kind, [])
        ttd = []
        for rec in faults:
            hits = [
                (i, ep)
                for i, ep in enumerate(episodes)
                if ep.rule in detectors
                and _meter_of(ep) == (rec["site"], rec["meter"])
                and rec["start_ms"] <= ep.fired_ms <= rec["end_ms"] + detectors[ep.rule]
            ]
            if hits:
                first = min(hits, key=lambda h: h[1].fired_ms)
                ttd.append((first[1].fired_ms - rec["start_ms"]) / 60_000)
                used.update(i for i, _ in hits)
        mine = [i for i, ep in enumerate(episodes) if ep.rule in detectors]
        true_eps = sum(1 for i in mine if i in used)
        rows.append(
            {
                "scenario": scenario,
                "kind": kind,
                "faults": len(faults),
                "detected": len(ttd),
                "episodes": len(mine),
                "true_episodes": true_eps,
                "ttd_median_min": statistics.median(ttd) if ttd else float("nan"),
                "ttd_p95_min": float(np.percentile(ttd, 95)) if ttd else float("nan"),
            }
        )
    # Episodes explained by no scored fault: explained by an unscored one on the meter, or false.
    false_eps = []
    for i, ep in enumerate(episodes):
        if i in used:
            continue
        explained = any(
            _meter_of(ep) == (rec["site"], rec["meter"])
            and rec["start_ms"] <= ep.fired_ms <= rec["end_ms"] + DAY_MS
            for rec in truth
            if rec["kind"] in NOT_SCORED
        )
        if not explained:
            false_eps.append(ep)
    for row in rows:
        row["false"] = sum(1 for ep in false_eps if ep.rule in DETECTORS[row["kind"]])
        row["false_per_100md"] = 100.0 * row["false"] / meter_days
    rows.append(
        {
            "scenario": scenario,
            "kind": "(all rules)",
            "faults": 0,
            "detected": 0,
            "episodes": len(episodes),
            "true_episodes": len(used),
            "false": len(false_eps),
            "false_per_100md": 100.0 * len(false_eps) / meter_days,
            "ttd_median_min": float("nan"),
            "ttd_p95_min": float("nan"),
            "false_list": false_eps,
        }
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--direct", action="store_true", help="feed ReadingBatches, skipping ingest's core"
    )
    parser.add_argument("--warmup", type=float, default=8.0, help="days of normal operation first")
    parser.add_argument("--config", default=str(ROOT / "deploy" / "cluster.example.yaml"))
    parser.add_argument("--scenario", action="append", help="scenario names (default: all shipped)")
    args = parser.parse_args()
    base = load_cluster(args.config)
    cluster = with_rules(dataclasses.replace(base, rules=()))
    names = args.scenario or sorted(p.stem for p in SCENARIOS.glob("*.yaml"))
    all_rows = []
    for name in names:
        t0 = time.perf_counter()
        path = SCENARIOS / f"{name}.yaml"
        sc = load_scenario(path)
        start_ms = int(sc.start.timestamp() * 1000)
        end_ms = start_ms + int(sc.duration.total_seconds() * 1000)
        engine = RuleEngine(cluster)
        warm_start = start_ms - int(args.warmup * DAY_MS)
        run(cluster, warm_start, start_ms, seed=args.seed + 1000, scenario=None, engine=engine)
        # Alerts still firing from the warm-up are not this scenario's: start it clean.
        for kernel in engine.kernels:
            kernel.state.state[:] = 0
        if args.direct:
            transitions = run(
                cluster, start_ms, end_ms, seed=args.seed, scenario=path, engine=engine
            )
            via = "direct ReadingBatches"
        else:
            transitions, counts = run_via_ingest(
                cluster, start_ms, end_ms, seed=args.seed, scenario=path, engine=engine
            )
            via = (
                f"via ingest.pipeline.prepare: {counts['messages']:,} messages, "
                f"{counts['readings']:,} readings accepted, {counts['rejected']:,} rejected"
            )
        truth = ground_truth(cluster, start_ms, seed=args.seed, scenario=path)
        meter_days = len(cluster.meters) * (end_ms - start_ms) / DAY_MS
        rows = score(name, truth, episodes_of(transitions), meter_days)
        all_rows += rows
        unscored = sorted({r["kind"] for r in truth if r["kind"] in NOT_SCORED})
        print(
            f"\n== {name}: {len(truth)} faults, {meter_days:.0f} meter-days, "
            f"{len(transitions)} transitions ({time.perf_counter() - t0:.0f} s)"
        )
        print(f"   fed {via}")
        if unscored:
            print(
                "   not scored (not rules' job): "
                + ", ".join(f"{k} [{NOT_SCORED[k]}]" for k in unscored)
            )
        print(
            f"   {'kind':<12} {'faults':>6} {'recall':>7} {'precision':>9} {'FA/100md':>9} "
            f"{'TTD med':>8} {'TTD p95':>8}"
        )
        for r in rows:
            recall = r["detected"] / r["faults"] if r["faults"] else float("nan")
            precision = r["true_episodes"] / r["episodes"] if r["episodes"] else float("nan")
            print(
                f"   {r['kind']:<12} {r['faults']:>6} {recall:>7.2f} {precision:>9.2f} "
                f"{r['false_per_100md']:>9.2f} {r['ttd_median_min']:>7.0f}m "
                f"{r['ttd_p95_min']:>7.0f}m"
            )
        for ep in rows[-1]["false_list"][:8]:
            print(
                f"   false alarm: {ep.rule} {ep.target} at {ep.fired_ms} for "
                f"{(ep.duration_ms(end_ms)) / 60_000:.0f} min"
            )
    scored = [r for r in all_rows if r["faults"]]
    total = sum(r["faults"] for r in scored)
    found = sum(r["detected"] for r in scored)
    print(f"\noverall recall {found}/{total} = {found / max(total, 1):.3f}")


if __name__ == "__main__":
    main()
