"""Ingest scale-out: readings/s with 1, 2 and 3 ingest worker processes partitioned by site,
against one Mosquitto and against a three-node NATS JetStream cluster (MQTT 3.1.1), both
into one influxd; plus the spool's replay rate after a store outage.

Method (issue 15): for each broker and worker count, every worker's persistent session is
made first (worker k of n takes `sites_of_partition(SITES, k/n)`: the stable site hash of
`--partition k/n`), then a backlog of N one-reading QoS 1 messages is queued by parallel
`mosquitto_pub -l` processes (to node 0 of the NATS cluster), then the workers, already
started and waiting, are told "go" together and the run is timed until influxd counts N.
Each figure is the median of `--repeat` runs and is given as a ratio to one worker measured
in the same run. While a run drains, /proc/<pid>/stat of every process (the broker node(s),
influxd, each worker) is sampled: the CPU each used, in cores, says where the bottleneck is;
on 2 cores three workers, a broker and influxd cannot all scale.

Spool replay: one worker drains N messages while influxd is stopped (every reading goes to
the fsynced spool and is acknowledged), it is stopped, influxd is started, and a new worker
on the same data directory replays the spool: readings/s of the replay, and from it the
drain time of a one-hour outage (`3600·a / (R − a)` at arrival rate a: new readings queue
behind the spool while it drains).

Run: `python bench/scale_ingest.py [--quick] [--n 40000] [--repeat 3] [--brokers mosquitto,nats]`
(`--quick`: n = 12,000, one run). The workers run the ingest stage of `ecocluster run --only
ingest` (InfluxDB store, acknowledge after the write), each in its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ecocluster.core.partition import Partition, sites_of_partition  # noqa: E402
from tests.services import InfluxServer, MosquittoServer, require_binary  # noqa: E402
from tests.services_nats import NatsCluster  # noqa: E402

PREFIX = "bench"
SITES = [f"site-{i:02d}" for i in range(12)]
_TICK = os.sysconf("SC_CLK_TCK")


def cluster_yaml() -> str:
    sites = "\n".join(
        f"  - {{id: {s}, org: o1, name: Site {s}, category: hotel, lat: 44.3, lon: 10.2}}"
        for s in SITES
    )
    meters = "\n".join(f"  - {{id: em-{s[-2:]}, site: {s}, quantities: [power_w]}}" for s in SITES)
    return (
        "territory: {id: bench, name: Bench, timezone: Europe/Rome}\n"
        "organisations:\n  - {id: o1, name: Org one, kind: public}\n"
        f"sites:\n{sites}\nmeters:\n{meters}\n"
    )


class BenchMosquitto(MosquittoServer):
    def config_text(self) -> str:
        return super().config_text() + "max_keepalive 600\n"


# -- the worker (a child process) ---------------------------------------------------------
def worker_main(args: argparse.Namespace) -> None:
    """Build the stage, say "ready", wait for "go" on stdin, run until SIGTERM; report the
    accepted count on stdout every 0.2 s."""
    from ecocluster.core.registry import load_cluster
    from ecocluster.core.settings import load_settings
    from ecocluster.ingest.stage import IngestStage

    settings = load_settings(
        {
            "mqtt_url": args.broker,
            "mqtt_protocol": "3.1.1",
            "mqtt_client_id": args.client_id,
            "ingest_sites": json.loads(args.sites),
            "topic_prefix": PREFIX,
            "influx_url": args.influx,
            "influx_db": args.db,
            "data_dir": args.data_dir,
            "log_level": "WARNING",
        }
    )
    stage = IngestStage(load_cluster(Path(args.cluster)), settings)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
        subscribed = asyncio.Event()
        task = asyncio.create_task(stage.run(subscribed))
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        while not task.done():
            report = {"accepted": stage.accepted, "subscribed": subscribed.is_set()}
            print(json.dumps(report), flush=True)
            await asyncio.wait({task}, timeout=0.2)
        with contextlib.suppress(asyncio.CancelledError):
            task.result()
        print(json.dumps({"accepted": stage.accepted, "done": True}), flush=True)

    asyncio.run(main())


@dataclass
class Worker:
    """A worker child process and what it last reported."""

    proc: subprocess.Popen[str]
    accepted: int = 0
    subscribed: bool = False
    lines: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, broker: str, client_id: str, sites: list[str], ctx: Context, db: str,
              data_dir: Path) -> Worker:  # fmt: skip
        cmd = [
            sys.executable, __file__, "--role", "worker", "--broker", broker,
            "--client-id", client_id, "--sites", json.dumps(sites), "--influx", ctx.influx.url,
            "--db", db, "--data-dir", str(data_dir), "--cluster", str(ctx.cluster_file),
        ]  # fmt: skip
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        worker = cls(proc)
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"worker {client_id} did not start")
        threading.Thread(target=worker._read, daemon=True).start()
        return worker

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError, KeyError):
                report = json.loads(line)
                self.accepted = int(report["accepted"])
                self.subscribed = self.subscribed or bool(report.get("subscribed"))

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- the driver -----------------------------------------------------------------------------
@dataclass
class Context:
    workdir: Path
    influx: InfluxServer
    cluster_file: Path


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all CPUs; /proc/stat minus idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / _TICK


def wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(0.05)


def wait_subscribed(workers: list[Worker], what: str) -> None:
    wait_for(lambda: all(w.subscribed for w in workers), 300, what)


def influx_count(ctx: Context, dbs: list[str]) -> int:
    total = 0
    for db in dbs:
        with contextlib.suppress(Exception):
            doc = ctx.influx.query('SELECT count("value") FROM "power_w"', db=db)
            series = doc["results"][0].get("series")
            total += int(series[0]["values"][0][1]) if series else 0
    return total


def queue_backlog(port: int, n: int, t0: int, workdir: Path) -> None:
    """n QoS 1 messages, one reading each, spread over the sites, by parallel mosquitto_pub."""
    pub = require_binary("mosquitto_pub")
    per_site: dict[str, list[str]] = {s: [] for s in SITES}
    for i in range(n):
        site = SITES[i % len(SITES)]
        per_site[site].append(f'{{"ts":{t0 + i},"m":{{"power_w":{i % 5000}.5}}}}')
    procs = []
    for site, lines in per_site.items():
        path = workdir / f"{site}-{uuid.uuid4().hex[:6]}.txt"
        path.write_text("\n".join(lines) + "\n")
        topic = f"{PREFIX}/{site}/em-{site[-2:]}/data"
        cmd = [pub, "-p", str(port), "-V", "mqttv311", "-q", "1", "-t", topic, "-l"]
        with path.open("rb") as stdin:
            procs.append(subprocess.Popen(cmd, stdin=stdin))
        while sum(p.poll() is None for p in procs) >= 6:
            time.sleep(0.01)
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError("mosquitto_pub failed")


@dataclass
class Broker:
    kind: str
    urls: list[str]  # one per node; worker k connects to node k % len
    publish_port: int
    pids: list[int]
    #: Publish while the workers are connected instead of draining a queued backlog:
    #: nats-server 2.9's MQTT redelivers a backlog queued for a session holding one
    #: subscription per site only every `ack_wait` (bench/RESULTS.md, issue 15).
    live: bool = False


def run_case(
    broker: Broker, workers_n: int, n: int, repeat: int, ctx: Context
) -> list[dict[str, Any]]:
    """`repeat` timed drains of n messages by `workers_n` partitioned workers."""
    tag = uuid.uuid4().hex[:6]
    parts = [Partition(k, workers_n) for k in range(workers_n)]
    ids = [f"bench-{broker.kind}-{tag}-{p.suffix}" for p in parts]
    sites = [sites_of_partition(SITES, p) for p in parts]
    data = [ctx.workdir / f"w-{i}" for i in ids]
    runs = []
    for r in range(repeat + 1):  # run 0 makes the persistent sessions
        dbs = [f"b_{tag}_{r}"]  # one database, as in production (it exists before)
        ctx.influx.create_database(dbs[0])
        workers = [
            Worker.start(broker.urls[k % len(broker.urls)], ids[k], sites[k], ctx, dbs[0], data[k])
            for k in range(workers_n)
        ]
        try:
            if r == 0:
                for w in workers:
                    w.go()
                wait_subscribed(workers, "sessions made")
                continue
            t0 = int(time.time() * 1000) - 200 * 86_400_000 + r * n
            if not broker.live:
                queue_backlog(broker.publish_port, n, t0, ctx.workdir)
            else:  # connected and subscribed before the first message is published
                for w in workers:
                    w.go()
                wait_subscribed(workers, "resubscribed")
            pids = {"broker": broker.pids, "influxd": [ctx.influx.proc.pid]}  # type: ignore[union-attr]
            pids["workers"] = [w.proc.pid for w in workers]
            before = {k: [cpu_s(p) for p in v] for k, v in pids.items()}
            busy0 = machine_busy_s()
            started = time.perf_counter()
            if broker.live:
                publishing = threading.Thread(
                    target=queue_backlog, args=(broker.publish_port, n, t0, ctx.workdir)
                )
                publishing.start()
            else:
                for w in workers:
                    w.go()
            while influx_count(ctx, dbs) < n:
                time.sleep(0.05)
                if time.perf_counter() - started > 600:
                    raise TimeoutError(f"{broker.kind} x{workers_n}: not drained in 600 s")
            wall = time.perf_counter() - started
            if broker.live:
                publishing.join()
            used = {
                k: [(cpu_s(p) - b) / wall for p, b in zip(v, before[k], strict=True)]
                for k, v in pids.items()
            }
            used["machine"] = [(machine_busy_s() - busy0) / wall]
            runs.append({"readings_s": n / wall, "cores": used})
        finally:
            for w in workers:
                w.stop()
            for db in dbs:
                with contextlib.suppress(Exception):
                    ctx.influx.query(f'DROP DATABASE "{db}"')
    return runs


def bottleneck(cores: dict[str, list[float]]) -> str:
    """Where the CPU went while the run drained, and what that says about the limit:
    `cores` holds each process's cores (CPU s / wall s) and `machine`, the whole machine's."""
    cpus = os.cpu_count() or 1
    machine = cores["machine"][0]
    ours = {k: sum(v) for k, v in cores.items() if k != "machine"}
    parts = ", ".join(f"{k} {v:.2f}" for k, v in ours.items())
    busiest = max(ours, key=lambda k: ours[k])
    others = max(0.0, machine - sum(ours.values()))
    if machine > 0.85 * cpus:
        verdict = (
            f"CPU-bound: the machine was saturated ({machine:.2f} of {cpus} cores busy,"
            f" {others:.2f} by other work); of ours, the {busiest} used most"
        )
    elif busiest == "broker" and ours["broker"] > 0.5 * sum(ours.values()):
        verdict = "the broker is the limit (most of the CPU, and the others wait on it)"
    else:
        verdict = (
            f"not CPU-bound ({machine:.2f} of {cpus} cores busy): latency limits it"
            " (acknowledgement windows, influxd write round trips)"
        )
    return f"cores: {parts}; {verdict}"


def spool_replay(broker: Broker, n: int, ctx: Context) -> tuple[float, float]:
    """Readings/s of one worker replaying its spool into influxd after an outage, and the
    spool's bytes per reading on disk."""
    tag = uuid.uuid4().hex[:6]
    client_id, db, data = f"bench-spool-{tag}", f"spool_{tag}", ctx.workdir / f"spool-{tag}"
    worker = Worker.start(broker.urls[0], client_id, SITES, ctx, db, data)
    worker.go()
    wait_for(lambda: worker.subscribed, 300, "spool worker subscribed")
    ctx.influx.stop()  # the outage
    try:
        t0 = int(time.time() * 1000) - 100 * 86_400_000
        queue_backlog(broker.publish_port, n, t0, ctx.workdir)
        deadline = time.monotonic() + 600
        while worker.accepted < n and time.monotonic() < deadline:  # all in the spool
            time.sleep(0.1)
    finally:
        worker.stop()
        ctx.influx.start()
    if worker.accepted < n:
        raise RuntimeError(f"only {worker.accepted} of {n} readings were spooled")
    spooled = sum(f.stat().st_size for f in (data / "spool").rglob("*") if f.is_file())
    replayer = Worker.start(broker.urls[0], client_id, SITES, ctx, db, data)
    started = time.perf_counter()
    replayer.go()
    try:
        while influx_count(ctx, [db]) < n:
            time.sleep(0.05)
        return n / (time.perf_counter() - started), spooled / n
    finally:
        replayer.stop()
        ctx.influx.query(f'DROP DATABASE "{db}"')


@contextlib.contextmanager
def start_broker(kind: str, workdir: Path) -> Any:
    if kind == "mosquitto":
        mosq = BenchMosquitto(workdir / "mosquitto", max_inflight_messages=1000)
        mosq.start()
        try:
            assert mosq.proc is not None
            yield Broker(kind, [mosq.url], mosq.port, [mosq.proc.pid])
        finally:
            mosq.stop()
    else:
        nats = NatsCluster(workdir / "nats", ack_wait_s=30.0)
        nats.start()
        try:
            pids = [node.proc.pid for node in nats.nodes if node.proc is not None]
            # the backlog goes to node 0; workers connect to nodes 1, 2, 0 (k % 3 after a shift)
            urls = nats.urls[1:] + nats.urls[:1]
            yield Broker(kind, urls, nats.mqtt_ports[0], pids, live=True)
        finally:
            nats.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", type=int)
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--brokers", default="mosquitto,nats")
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--role")
    for name in ("broker", "client-id", "sites", "influx", "db", "data-dir", "cluster"):
        parser.add_argument(f"--{name}")
    args = parser.parse_args()
    if args.role == "worker":
        worker_main(args)
        return
    n = args.n or (12_000 if args.quick else 40_000)
    repeat = args.repeat or (1 if args.quick else 3)
    counts = [int(c) for c in args.workers.split(",")]
    load = os.getloadavg()
    print(f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"n = {n} one-reading QoS 1 messages per run, {len(SITES)} sites, "
          f"median of {repeat}", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cluster_file = work / "cluster.yaml"
        cluster_file.write_text(cluster_yaml())
        influx = InfluxServer(work / "influxd")
        influx.start()
        ctx = Context(work, influx, cluster_file)
        try:
            for kind in args.brokers.split(","):
                with start_broker(kind, work) as broker:
                    base = None
                    for workers_n in counts:
                        runs = run_case(broker, workers_n, n, repeat, ctx)
                        rate = statistics.median(r["readings_s"] for r in runs)
                        base = base or rate
                        mid = sorted(runs, key=lambda r: r["readings_s"])[len(runs) // 2]
                        cost = ", ".join(
                            f"{k} {sum(v) / mid['readings_s'] * 1e6:.1f}"
                            for k, v in mid["cores"].items()
                            if k != "machine"
                        )
                        print(
                            f"{kind:9s} {workers_n} worker(s): {rate:>8.0f} readings/s "
                            f"({rate / base:.2f}x one worker); {bottleneck(mid['cores'])};"
                            f" CPU µs per reading: {cost}",
                            flush=True,
                        )
                    if kind == "mosquitto":
                        replay, per_reading = spool_replay(broker, n, ctx)
                        print(
                            f"\nspool replay after an outage (1 worker): {replay:.0f} readings/s;"
                            f" spool {per_reading:.0f} B/reading on disk"
                        )
                        for arrival in (100, 1_667, 5_000):
                            if arrival < replay:
                                drain = 3600 * arrival / (replay - arrival)
                                print(
                                    f"  one-hour outage at {arrival:,.0f} readings/s arriving:"
                                    f" {3600 * arrival:,.0f} spooled, drained in {drain:,.0f} s"
                                )
                        print(flush=True)
        finally:
            influx.stop()
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
