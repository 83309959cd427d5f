"""Rule-side latency of a `for: 0` threshold breach: from `on_readings` to the transition
reaching the stage's sink, with default settings (tick every `rules_tick_s`, 10 s).

The rules stage runs for real (its own tick loop, in one asyncio loop with the readings)
over the 20-rule mix of `bench/rules_engine.py` at `--meters` × 4 series, fed a full batch
of normal readings every second; breaches (one meter's power over the `power-band`
limit, held until the end) arrive at random moments. Measured in the same process:
evaluating instant rules as readings arrive (`instant=True`, the default) and the
baseline of waiting for the tick (`instant=False`); a third run shows what the tick
misses, breaches that are over within a second. Also prints what the instant evaluation
adds to `on_readings`.

    .venv/bin/python bench/rules_latency.py [--meters 25000] [--seconds 30] [--breaches 60]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rules_engine import build_cluster

from ecocluster.core.registry import Cluster
from ecocluster.core.settings import Settings
from ecocluster.core.types import ReadingBatch
from ecocluster.rules.stage import RulesStage
from ecocluster.rules.transitions import Transition

NORMAL = np.array([5000.0, 40.0, 20.0, 800.0])  # power_w, flow_lpm, temp_c, co2_ppm


class Recorder:
    """A TransitionSink noting when each meter's `power-band` alert arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}

    async def on_transitions(self, transitions: Sequence[Transition]) -> None:
        now = time.perf_counter()
        for t in transitions:
            if t.rule == "power-band" and t.state == "firing":
                self.arrived.setdefault(t.labels["meter"], now)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def normal_batch(cluster: Cluster, breached: set[int], hold: bool) -> ReadingBatch:
    """Every series at its normal value; with `hold`, breached meters stay over the limit
    (a breach that lasts), else they are back to normal (a breach shorter than a tick)."""
    n = len(cluster.series)
    idx = np.arange(n)
    values = NORMAL[idx % 4]
    if hold and breached:
        values[4 * np.fromiter(breached, np.int64)] = 9999.0
    return ReadingBatch(
        cluster.series, idx, np.full(n, _wall_ms(), np.int64), values, np.full(n, np.nan)
    )


def breach(cluster: Cluster, meter: int) -> ReadingBatch:
    row = np.array([4 * meter], np.int64)  # the meter's power_w series
    return ReadingBatch(
        cluster.series,
        row,
        np.array([_wall_ms()], np.int64),
        np.array([9999.0]),
        np.array([np.nan]),
    )


async def measure(
    cluster: Cluster, *, instant: bool, seconds: float, n_breaches: int, hold: bool = True
) -> tuple[list[float], list[float]]:
    """(latencies of the breaches in s, on_readings times of the full batches in s)."""
    sink = Recorder()
    tick_s = Settings().rules_tick_s
    stage = RulesStage(cluster, sinks=[sink], tick_s=tick_s, instant=instant)
    ready = asyncio.Event()
    runner = asyncio.create_task(stage.run(ready), name="rules")
    await ready.wait()
    feed_s: list[float] = []
    breached: set[int] = set()

    async def feed() -> None:
        while True:
            t = time.perf_counter()
            await stage.on_readings(normal_batch(cluster, breached, hold))
            feed_s.append(time.perf_counter() - t)
            await asyncio.sleep(1.0)

    feeder = asyncio.create_task(feed(), name="feed")
    rng = random.Random(7)
    offsets = sorted(rng.uniform(0.5, seconds) for _ in range(n_breaches))
    meters = rng.sample(range(len(cluster.meters)), n_breaches)
    sent: dict[str, float] = {}
    start = time.perf_counter()
    for offset, meter in zip(offsets, meters, strict=True):
        await asyncio.sleep(max(0.0, start + offset - time.perf_counter()))
        sent[f"m{meter}"] = time.perf_counter()
        breached.add(meter)
        await stage.on_readings(breach(cluster, meter))
    await asyncio.sleep(tick_s + 1.0)
    feeder.cancel()
    runner.cancel()
    await asyncio.gather(feeder, runner, return_exceptions=True)
    return [sink.arrived[m] - t for m, t in sent.items() if m in sink.arrived], feed_s


def _line(name: str, lat: list[float], n: int) -> str:
    p50, p99 = np.percentile(lat, 50) * 1e3, np.percentile(lat, 99) * 1e3
    return f"{name:<28} {len(lat)}/{n} arrived, p50 {p50:8.1f} ms, p99 {p99:8.1f} ms"


async def main_async(args: argparse.Namespace) -> None:
    cluster = build_cluster(args.meters)
    print(
        f"{len(cluster.series):,} series, {len(cluster.rules)} rules, default tick "
        f"{Settings().rules_tick_s:g} s, {args.breaches} breaches over {args.seconds:g} s"
    )
    fast, fast_feed = await measure(
        cluster, instant=True, seconds=args.seconds, n_breaches=args.breaches
    )
    slow, slow_feed = await measure(
        cluster, instant=False, seconds=args.seconds, n_breaches=args.breaches
    )
    short, _ = await measure(
        cluster, instant=False, seconds=args.seconds, n_breaches=args.breaches, hold=False
    )
    print(_line("instant (default)", fast, args.breaches))
    print(_line("tick only (baseline)", slow, args.breaches))
    print(
        f"tick only, breaches lasting < 1 s: {len(short)}/{args.breaches} ever seen "
        "(instant evaluation sees every one)"
    )
    print(f"p99 ratio baseline / instant: {np.percentile(slow, 99) / np.percentile(fast, 99):.0f}x")
    print(
        f"on_readings of a {len(cluster.series):,}-reading batch: "
        f"{statistics.median(fast_feed) * 1e3:.1f} ms with instant rules, "
        f"{statistics.median(slow_feed) * 1e3:.1f} ms without (medians)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, default=25_000, help="4 series each")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--breaches", type=int, default=60)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
