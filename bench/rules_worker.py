"""Rules worker throughput: readings/s a rules worker consumes from the broker (decode with
ingest's pure core + the rule engine), one worker against two partitioned ones.

The broker is loaded so that the workers, not the publisher, are the limit: each worker's
persistent session is created first (the worker's own subscription: its sites' topics),
then a backlog of N messages (two readings each, `power_w` and `energy_kwh`, spread over
the sites of a generated cluster) is queued by parallel `mosquitto_pub -l`, then the
workers start together and drain it. Each worker is its own process (`--child`): the real
`RulesStage` with its `BrokerFeed` (`rules/broker_feed.py`), QoS 1, acknowledged after the
engine took each burst; the rules tick every second meanwhile. A child reports its time
split: decoding (`ingest.pipeline.prepare` + `dedupe_last`), the engine (`on_readings`:
scatter into the hot window + instant rules), and the rest (receiving: the MQTT protocol
parser and waiting for the broker).

Run: `python bench/rules_worker.py [--quick] [--n 60000] [--sites 200] [--repeat 3]`
(`--quick`: n = 30,000, one run of each case). Figures: readings/s (median of the
repeats) and the ratio of 2 workers to 1 worker measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.services import MosquittoServer, require_binary  # noqa: E402

PREFIX = "rbench"
READINGS_PER_MSG = 2


def cluster_text(n_sites: int) -> str:
    sites = "\n".join(
        f"  - {{id: s{i:04d}, org: o{i % 4}, name: S{i}, category: hotel, lat: 44.3, lon: 10.2}}"
        for i in range(n_sites)
    )
    meters = "\n".join(
        f"  - {{id: em-01, site: s{i:04d}, quantities: [energy_kwh, power_w]}}"
        for i in range(n_sites)
    )
    orgs = "\n".join(f"  - {{id: o{k}, name: O{k}, kind: public}}" for k in range(4))
    return f"""\
territory: {{id: bench, name: Bench, timezone: Europe/Rome}}
organisations:
{orgs}
sites:
{sites}
meters:
{meters}
rules:
  - {{name: overload, type: threshold, quantity: power_w, above: 60000, severity: critical}}
  - {{name: overload-held, type: threshold, quantity: power_w, above: 50000, for: 2m}}
  - {{name: org-peak, type: threshold, quantity: power_w, scope: org, above: 1e9}}
"""


# -- the worker (a child process) --------------------------------------------------------------


async def _child(args: argparse.Namespace) -> None:
    from ecocluster.core.registry import load_cluster
    from ecocluster.core.settings import load_settings
    from ecocluster.core.types import DeviceStatus, ReadingBatch
    from ecocluster.ingest.subscriber import Inbound
    from ecocluster.rules.broker_feed import BrokerFeed
    from ecocluster.rules.partitioning import WorkerShare
    from ecocluster.rules.stage import RulesStage

    cluster = load_cluster(Path(args.cluster))
    settings = load_settings(
        {
            "mqtt_url": f"mqtt://127.0.0.1:{args.port}",
            "mqtt_client_id": args.client_id,
            "topic_prefix": PREFIX,
            "data_dir": args.data,
            "max_age_s": 400 * 86400.0,
        }
    )
    share = WorkerShare.parse(args.share)
    stage = RulesStage(cluster, view=share.rules_view, tick_s=1.0, worker=str(share))
    spent = {"engine": 0.0, "take": 0.0}  # CPU seconds (the machine is shared)
    drained = asyncio.Event()

    class TimedSink:
        async def on_readings(self, batch: ReadingBatch) -> None:
            t = time.process_time()
            await stage.on_readings(batch)
            spent["engine"] += time.process_time() - t

        async def on_status(self, status: DeviceStatus) -> None:
            await stage.on_status(status)

    class TimedFeed(BrokerFeed):
        async def take(self, messages: list[Inbound]) -> int:
            t = time.process_time()
            n = await super().take(messages)
            spent["take"] += time.process_time() - t
            if self.consumed >= args.expect:
                drained.set()
            return n

    feed = TimedFeed(stage.engine.cluster, settings, sink=TimedSink(), share=share)
    stage.use_feed(feed)
    if args.prime:  # create the persistent session (the worker's own subscription), leave
        ready = asyncio.Event()
        task = asyncio.create_task(stage.run(ready))
        await asyncio.wait_for(ready.wait(), 30)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return
    print("built", flush=True)
    sys.stdin.readline()  # the parent says go: both workers start together
    cpu0, wall0 = time.process_time(), time.time()
    task = asyncio.create_task(stage.run(asyncio.Event()))
    await asyncio.wait([task, asyncio.create_task(drained.wait())], return_when="FIRST_COMPLETED")
    wall1, cpu1 = time.time(), time.process_time()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    decode = spent["take"] - spent["engine"]
    report = {
        "share": args.share,
        "messages": feed.consumed,
        "readings": feed.readings,
        "start": wall0,
        "end": wall1,
        "cpu_s": cpu1 - cpu0,
        "decode_s": decode,
        "engine_s": spent["engine"],
    }
    print(json.dumps(report), flush=True)


# -- the driver --------------------------------------------------------------------------------


def queue_backlog(port: int, n: int, n_sites: int, workdir: Path) -> dict[str, int]:
    """n messages round-robin over the sites, old unique times; returns messages per site."""
    t0 = int(time.time() * 1000) - 200 * 86_400_000
    lines: dict[int, list[str]] = {i: [] for i in range(n_sites)}
    for j in range(n):
        i = j % n_sites
        ts = t0 + j
        lines[i].append(f'{{"ts":{ts},"m":{{"power_w":{j % 40000}.5,"energy_kwh":{j}.25}}}}')
    pub = require_binary("mosquitto_pub")
    running: list[subprocess.Popen[bytes]] = []
    for i, site_lines in lines.items():
        while len(running) >= 8:
            running = [p for p in running if p.poll() is None]
            time.sleep(0.005)
        path = workdir / f"s{i}.txt"
        path.write_text("\n".join(site_lines) + "\n")
        running.append(
            subprocess.Popen(
                [pub, "-p", str(port), "-q", "1", "-t", f"{PREFIX}/s{i:04d}/em-01/data", "-l"],
                stdin=path.open("rb"),
            )
        )
    for p in running:
        p.wait()
    return {f"s{i:04d}": len(site_lines) for i, site_lines in lines.items()}


def _spawn(
    cluster: Path, port: int, share: str, client: str, data: Path, expect: int, prime: bool
) -> subprocess.Popen[str]:
    cmd = [sys.executable, __file__, "--child", "--cluster", str(cluster), "--port", str(port)]
    cmd += ["--share", share, "--client-id", client, "--data", str(data)]
    cmd += ["--expect", str(expect)] + (["--prime"] if prime else [])
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a live process used so far (the broker's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_case(
    workers: int, n: int, n_sites: int, cluster: Path, broker: MosquittoServer, workdir: Path
) -> dict[str, Any]:
    from ecocluster.core.partition import owner_of

    shares = ["0/1"] if workers == 1 else [f"{k}/{workers}" for k in range(workers)]
    client = f"rb-{uuid.uuid4().hex[:6]}"
    port = broker.port
    for share in shares:
        _spawn(cluster, port, share, client, workdir, 0, prime=True).wait(60)
    per_site = queue_backlog(port, n, n_sites, workdir)
    expect = {
        share: sum(
            c for s, c in per_site.items() if workers == 1 or owner_of(s, workers) == int(share[0])
        )
        for share in shares
    }
    procs = [_spawn(cluster, port, s, client, workdir, expect[s], prime=False) for s in shares]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "built"
    assert broker.proc is not None
    broker_cpu0 = _cpu_s(broker.proc.pid)
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    reports = []
    for p in procs:
        assert p.stdout is not None
        reports.append(json.loads(p.stdout.readline()))
    broker_cpu = _cpu_s(broker.proc.pid) - broker_cpu0
    for p in procs:
        p.wait(60)
    readings = sum(r["readings"] for r in reports)
    seconds = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    assert sum(r["messages"] for r in reports) == n, reports
    return {
        "workers": workers,
        "readings": readings,
        "seconds": seconds,
        "rate": readings / seconds,
        "decode_share": sum(r["decode_s"] for r in reports) / sum(r["cpu_s"] for r in reports),
        "engine_share": sum(r["engine_s"] for r in reports) / sum(r["cpu_s"] for r in reports),
        "cpu_per_reading_us": 1e6 * sum(r["cpu_s"] for r in reports) / readings,
        "broker_cpu_share": broker_cpu / seconds,
        "split": [round(r["readings"] / readings, 2) for r in reports],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prime", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cluster", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--share", help=argparse.SUPPRESS)
    parser.add_argument("--client-id", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="n = 30,000, one run")
    parser.add_argument("--n", type=int, default=60_000, help="messages (2 readings each)")
    parser.add_argument("--sites", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.child:
        asyncio.run(_child(args))
        return
    n, repeat = (30_000, 1) if args.quick else (args.n, args.repeat)
    with tempfile.TemporaryDirectory(prefix="rules-bench-") as tmp:
        workdir = Path(tmp)
        cluster = workdir / "cluster.yaml"
        cluster.write_text(cluster_text(args.sites))
        broker = MosquittoServer(workdir / "broker")
        broker.start()
        try:
            results: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
            for _ in range(repeat):
                for workers in (1, 2):
                    results[workers].append(
                        run_case(workers, n, args.sites, cluster, broker, workdir)
                    )
        finally:
            broker.stop()
    print(
        f"rules worker throughput: {n} messages x {READINGS_PER_MSG} readings, {args.sites}"
        f" sites, {repeat} run(s), medians; load average {os.getloadavg()[0]:.1f} at the end"
    )
    base = statistics.median(r["rate"] for r in results[1])
    for workers, runs in results.items():
        rate = statistics.median(r["rate"] for r in runs)
        last = runs[-1]
        print(
            f"  {workers} worker{'s' if workers > 1 else ' '}: {rate:9,.0f} readings/s"
            f"  x{rate / base:4.2f} vs 1 worker  cpu {last['cpu_per_reading_us']:.1f} us/reading"
            f" (decode {last['decode_share']:.0%}, engine {last['engine_share']:.0%},"
            f" receive/other {1 - last['decode_share'] - last['engine_share']:.0%})"
            f"  broker {statistics.median(r['broker_cpu_share'] for r in runs):.0%} of a core"
            f"  split {last['split']}"
        )


if __name__ == "__main__":
    main()
