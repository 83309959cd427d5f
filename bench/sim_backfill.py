"""Simulator throughput and pacing against a real Mosquitto.

1. Shared-connection backfill rate (messages/s) of `firmware_sim` (generation, encoding
   and publishing together, timed from the start of the run, connected, to the last
   message written at QoS 0 or acknowledged at QoS 1) against `mosquitto_pub -l`
   publishing the very same pre-generated payloads in the same run, at QoS 0 and QoS 1
   (target: >= 0.3x).
2. Per-meter mode: 2,060 connected devices (the example territory x 20) at one message
   each per 10 s in real time, measuring the lag of each publish behind its schedule
   (target: no falling behind).

Run: /tmp/venv/bin/python bench/sim_backfill.py [--hours 72] [--reps 5] [--per-meter-s 60]
Figures are medians over the repetitions.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ecocluster.core.registry import load_cluster  # noqa: E402
from ecocluster.sim import Encoder, SimConfig, Simulation, build_plan, generate  # noqa: E402
from tests.services import MosquittoServer  # noqa: E402

START = datetime(2026, 1, 12, tzinfo=UTC)


def sim_rate(url: str, plan, hours: float, qos: int, prefix: str) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    cfg = SimConfig(
        broker=url, prefix=prefix, qos=qos, start=START, end=START + timedelta(hours=hours)
    )
    stats = Simulation(plan, cfg).run()
    return stats.messages / stats.wall_s, stats.messages


def pregenerate(plan, hours: float, path: Path) -> int:  # type: ignore[no-untyped-def]
    encoder = Encoder(plan, prefix="bench")
    n = 0
    with path.open("wb") as out:
        for batch in generate(plan, START, START + timedelta(hours=hours), chunk=timedelta(days=1)):
            for msg in encoder.messages(batch):
                out.write(msg.payload + b"\n")
                n += 1
    return n


#: Lines per `mosquitto_pub -l` process. One process fed more than this at QoS 1 quits
#: early without an error (its message ids wrap past 65,535 queued messages; DESIGN.md): fed
#: all 244,512 lines at once it delivered only 47,909, so the baseline is chunked.
PUB_CHUNK_LINES = 20_000


def split_lines(lines: Path) -> list[Path]:
    parts: list[Path] = []
    with lines.open("rb") as src:
        all_lines = src.readlines()
    for i in range(0, len(all_lines), PUB_CHUNK_LINES):
        part = lines.with_suffix(f".{len(parts)}")
        part.write_bytes(b"".join(all_lines[i : i + PUB_CHUNK_LINES]))
        parts.append(part)
    return parts


def mosquitto_pub_rate(port: int, parts: list[Path], n: int, qos: int) -> float:
    """The same payloads through `mosquitto_pub -l`, one process per chunk, one after the
    other: the rate of one publishing connection, as the simulator's shared mode is."""
    cmd = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", "bench/pub/x/data",
           "-q", str(qos), "-l"]  # fmt: skip
    t0 = time.perf_counter()
    for part in parts:
        with part.open("rb") as stdin:
            subprocess.run(cmd, stdin=stdin, check=True)
    return n / (time.perf_counter() - t0)


def mosquitto_pub_delivered(port: int, parts: list[Path], qos: int) -> int:
    """How many of the lines an untimed baseline run really publishes, counted by a
    subscriber: the check that the chunked baseline above delivers everything."""
    with tempfile.TemporaryFile() as out:
        cmd = ["mosquitto_sub", "-p", str(port), "-t", "bench/pub/#", "-q", "1"]
        sub = subprocess.Popen(cmd, stdout=out)
        try:
            time.sleep(0.5)  # subscribed
            mosquitto_pub_rate(port, parts, 0, qos)
            time.sleep(2.0)  # the last ones forwarded
        finally:
            sub.terminate()
            sub.wait()
        out.seek(0)
        return sum(1 for _ in out)


def per_meter(url: str, cluster, seconds: float) -> dict[str, float]:  # type: ignore[no-untyped-def]
    plan = build_plan(cluster, seed=1, scale=20, intervals={"*": 10_000})
    sim = Simulation(plan, SimConfig(broker=url, prefix="pm", mode="per-meter", duration_s=seconds))
    t0 = time.perf_counter()
    stats = sim.run()
    lags = list(stats.lags_s)
    tail = lags[-len(lags) // 4 :]
    return {
        "devices": len(plan.meters),
        "messages": stats.messages,
        "expected": len(plan.meters) * seconds / 10,
        "rate": stats.messages / stats.wall_s,
        "wall_s": time.perf_counter() - t0,
        **{f"lag_{k}_s": v for k, v in stats.lag_percentiles().items()},
        "lag_last_quarter_p99_s": statistics.quantiles(tail, n=100)[98] if len(tail) > 100 else 0,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=72.0)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--per-meter-s", type=float, default=60.0)
    args = ap.parse_args()
    cluster = load_cluster(REPO / "deploy" / "cluster.example.yaml")
    plan = build_plan(cluster, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        broker = MosquittoServer(Path(tmp) / "mq")
        broker.start()
        try:
            lines = Path(tmp) / "lines.txt"
            n = pregenerate(plan, args.hours, lines)
            parts = split_lines(lines)
            print(f"example territory: {len(plan.meters)} meters, {args.hours:g} h = {n} messages")
            for qos in (0, 1):
                sims, pubs = [], []
                for rep in range(args.reps):
                    rate, sent = sim_rate(broker.url, plan, args.hours, qos, f"b{qos}{rep}")
                    assert sent == n, (sent, n)
                    sims.append(rate)
                    pubs.append(mosquitto_pub_rate(broker.port, parts, n, qos))
                s, p = statistics.median(sims), statistics.median(pubs)
                print(
                    f"QoS {qos}: firmware_sim shared {s:,.0f} msg/s | mosquitto_pub -l {p:,.0f} "
                    f"msg/s | ratio {s / p:.2f}x (target >= 0.3x)"
                )
                if qos == 1:
                    got = mosquitto_pub_delivered(broker.port, parts, qos)
                    print(f"  baseline check: mosquitto_pub delivered {got}/{n} messages")
            pm = per_meter(broker.url, cluster, args.per_meter_s)
            print(
                f"per-meter: {pm['devices']:.0f} devices, {pm['messages']:.0f}/"
                f"{pm['expected']:.0f} messages in {args.per_meter_s:g}s ({pm['rate']:.0f} msg/s), "
                f"lag p50 {pm['lag_p50_s'] * 1000:.1f} ms, p99 {pm['lag_p99_s'] * 1000:.1f} ms, "
                f"max {pm['lag_max_s'] * 1000:.1f} ms, last-quarter p99 "
                f"{pm['lag_last_quarter_p99_s'] * 1000:.1f} ms; "
                f"wall incl. connect {pm['wall_s']:.1f}s"
            )
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
