"""Ingest throughput: how fast a consumer drains a backlog queued for its persistent session.

The broker is loaded so that the subscriber, not the publisher, is the limit: for each
consumer a persistent session is created, N messages are queued for it by several
`mosquitto_pub -l` processes (≤ 50,000 lines each: its message id wraps past 65,535), then
the consumer connects and drains. Consumers, each its own process (CPU and peak RSS from
its rusage or its own process_time):

- `mosquitto_sub`   the C client, the baseline (ratio 1.0);
- `naive`           paho callback, json.loads, one line-protocol string per message, a write
                    to influxd per 5,000 (paho acknowledges on receipt);
- `ingest`          the ingest stage with the InfluxDB store, acknowledging QoS 1 only after
                    the write; timed until influxd counts every reading.

Run: `python bench/ingest_throughput.py [--quick] [--n 60000] [--repeat 3] [--cases 1x1,0x1]`
(`--quick`: n = 30,000, one run of each case, about a minute and a half). Other CPU-heavy
work on the machine distorts the figures: the broker, influxd and the consumer share it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.services import InfluxServer, MosquittoServer, require_binary  # noqa: E402

PREFIX = "bench"
CLUSTER = REPO / "deploy" / "cluster.example.yaml"


class BenchMosquitto(MosquittoServer):
    def config_text(self) -> str:
        # QoS 0 messages are queued for an offline persistent session only on request.
        return super().config_text() + "queue_qos0_messages true\nmax_keepalive 600\n"


def power_meters() -> list[tuple[str, str]]:
    from ecocluster.core.registry import load_cluster

    cluster = load_cluster(CLUSTER)
    return [(m.site, m.id) for m in cluster.meters if "power_w" in m.quantities]


def queue_backlog(port: int, n: int, per_msg: int, qos: int, workdir: Path) -> float:
    """Publish n messages spread over the power meters with parallel mosquitto_pub -l."""
    meters = power_meters()
    t0 = int(time.time() * 1000) - 300 * 86_400_000  # old, unique timestamps, within max_age
    by_meter: dict[int, list[str]] = {j: [] for j in range(len(meters))}
    for i in range(n):
        j = i % len(meters)
        ts = t0 + i * per_msg
        if per_msg == 1:
            by_meter[j].append(f'{{"ts":{ts},"m":{{"power_w":{i % 5000}.5}}}}')
        else:
            items = ",".join(f'{{"ts":{ts + k},"m":{{"power_w":{k}.5}}}}' for k in range(per_msg))
            by_meter[j].append(f"[{items}]")
    jobs = []
    for j, lines in by_meter.items():
        site, meter = meters[j]
        for c in range(0, len(lines), 50_000):
            path = workdir / f"m{j}_{c}.txt"
            path.write_text("\n".join(lines[c : c + 50_000]) + "\n")
            jobs.append((f"{PREFIX}/{site}/{meter}/data", path))
    started = time.perf_counter()
    pub = require_binary("mosquitto_pub")
    running: list[subprocess.Popen[bytes]] = []
    for topic, path in jobs:
        while len(running) >= 8:
            running = [p for p in running if p.poll() is None]
            time.sleep(0.01)
        running.append(
            subprocess.Popen(
                [
                    pub,
                    "-p",
                    str(port),
                    "-q",
                    str(qos),
                    "-t",
                    topic,
                    "-l",
                    "-i",
                    f"pub-{uuid.uuid4().hex[:6]}",
                ],
                stdin=path.open("rb"),
            )
        )
    for p in running:
        p.wait()
    return time.perf_counter() - started


def create_session(port: int, client_id: str, qos: int) -> None:
    sub = require_binary("mosquitto_sub")
    subprocess.run(
        [
            sub,
            "-p",
            str(port),
            "-c",
            "-i",
            client_id,
            "-q",
            str(qos),
            "-t",
            f"{PREFIX}/+/+/data",
            "-E",
        ],
        check=True,
        timeout=10,
    )


def _peak_rss_kib(pid: int) -> int:
    """VmHWM of a live process: its own high-water mark since exec (rusage's ru_maxrss also
    counts the pages of the forked driver, so it is no use here)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_measured(
    cmd: list[str], env: dict[str, str] | None = None
) -> tuple[float, float, int, str]:
    """Run a consumer; wall s, CPU s (rusage), peak RSS KiB (sampled VmHWM), stdout."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _peak_rss_kib(proc.pid))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = proc.stdout.read() if proc.stdout else b""  # type: ignore[union-attr]
    done.set()
    sampler.join()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd[:3]} failed")
    return wall, usage.ru_utime + usage.ru_stime, peak[0], out.decode()


# -- consumers (run as child processes) ---------------------------------------------------
def consumer_naive(port: int, client_id: str, qos: int, n: int, influx: str, db: str) -> None:
    import httpx
    import paho.mqtt.client as paho

    lines: list[str] = []
    state = {"count": 0, "first": 0.0, "cpu0": time.process_time()}
    http = httpx.Client(base_url=influx)

    def flush() -> None:
        if lines:
            http.post("/write", params={"db": db, "precision": "ms"}, content="\n".join(lines))
            lines.clear()

    def on_message(client: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        if not state["count"]:
            state["first"] = time.perf_counter()
        _, site, meter, _ = msg.topic.split("/")
        doc = json.loads(msg.payload)
        for item in doc if isinstance(doc, list) else [doc]:
            for q, v in item["m"].items():
                lines.append(f"{q},site={site},meter={meter} value={float(v)} {item['ts']}")
        state["count"] += 1
        if len(lines) >= 5000:
            flush()
        if state["count"] >= n:
            flush()
            client.disconnect()

    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=False,
        protocol=paho.MQTTv311,
    )
    client.on_message = on_message
    client.connect("127.0.0.1", port, 600)
    t0 = time.perf_counter()
    client.loop_forever()
    print(
        json.dumps({"wall": time.perf_counter() - t0, "cpu": time.process_time() - state["cpu0"]})
    )


def consumer_ingest(port: int, client_id: str, qos: int, n: int, influx: str, db: str) -> None:
    import httpx

    from ecocluster.core.registry import load_cluster
    from ecocluster.core.settings import load_settings
    from ecocluster.ingest.stage import IngestStage

    cluster = load_cluster(CLUSTER)
    settings = load_settings(
        {
            "mqtt_url": f"mqtt://127.0.0.1:{port}",
            "mqtt_client_id": client_id,
            "topic_prefix": PREFIX,
            "influx_url": influx,
            "influx_db": db,
            "data_dir": tempfile.mkdtemp(prefix="bench-ingest-"),
            "mqtt_qos": qos,
            "mqtt_receive_maximum": 1000,
            "mqtt_protocol": "3.1.1",
        }
    )

    def influx_count() -> int:
        doc = httpx.post(
            f"{influx}/query", params={"db": db, "q": 'SELECT count(value) FROM "power_w"'}
        ).json()
        series = doc["results"][0].get("series")
        return int(series[0]["values"][0][1]) if series else 0

    async def main() -> None:
        stage = IngestStage(cluster, settings)
        cpu0, t0 = time.process_time(), time.perf_counter()  # timed from before connecting
        task = asyncio.create_task(stage.run(asyncio.Event()))
        while stage.accepted < n:
            await asyncio.sleep(0.01)
            if task.done():
                task.result()
        while influx_count() < n:  # noqa: ASYNC110 - polling influxd, not an event
            await asyncio.sleep(0.01)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        print(json.dumps({"wall": wall, "cpu": cpu}))

    asyncio.run(main())


# -- driver ---------------------------------------------------------------------------------
def measure(
    kind: str,
    qos: int,
    n: int,
    per_msg: int,
    mosq: MosquittoServer,
    influxd: InfluxServer,
    workdir: Path,
) -> dict[str, float]:
    client_id = f"{kind}-{uuid.uuid4().hex[:8]}"
    db = f"bench_{uuid.uuid4().hex[:8]}"
    influxd.create_database(db)
    create_session(mosq.port, client_id, qos)
    backlog_dir = workdir / client_id
    backlog_dir.mkdir()
    queue_backlog(mosq.port, n, per_msg, 1, backlog_dir)
    if kind == "mosquitto_sub":
        cmd = [
            require_binary("mosquitto_sub"),
            "-p",
            str(mosq.port),
            "-c",
            "-i",
            client_id,
            "-q",
            str(qos),
            "-t",
            f"{PREFIX}/+/+/data",
            "-C",
            str(n),
        ]
        wall, cpu, rss, _ = run_measured(cmd)
    else:
        cmd = [
            sys.executable,
            __file__,
            "--role",
            kind,
            "--port",
            str(mosq.port),
            "--client-id",
            client_id,
            "--qos",
            str(qos),
            "--n",
            str(n if kind == "naive" else n * per_msg),
            "--influx",
            influxd.url,
            "--db",
            db,
        ]
        _, _, rss, out = run_measured(cmd, env={**os.environ, "PYTHONPATH": str(REPO)})
        inner = json.loads(out.strip().splitlines()[-1])
        wall, cpu = inner["wall"], inner["cpu"]
    influxd.query(f'DROP DATABASE "{db}"')
    return {
        "msg_s": n / wall,
        "readings_s": n * per_msg / wall,
        "cpu_us": cpu / n * 1e6,
        "rss_mb": rss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--cases", help="only these QoSxREADINGS cases, e.g. 1x1,0x1")
    parser.add_argument("--role")
    parser.add_argument("--port", type=int)
    parser.add_argument("--client-id")
    parser.add_argument("--qos", type=int, default=1)
    parser.add_argument("--influx")
    parser.add_argument("--db")
    args = parser.parse_args()
    if args.role:
        fn = {"naive": consumer_naive, "ingest": consumer_ingest}[args.role]
        fn(args.port, args.client_id, args.qos, args.n, args.influx, args.db)
        return
    n = args.n or (30_000 if args.quick else 100_000)
    repeat = args.repeat or (1 if args.quick else 3)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mosq = BenchMosquitto(work / "mosquitto", max_inflight_messages=1000)
        influxd = InfluxServer(work / "influxd")
        mosq.start()
        influxd.start()
        try:
            rows = []
            plan = [(q, k, 1) for q in (0, 1) for k in ("mosquitto_sub", "naive", "ingest")]
            plan += [(1, k, 10) for k in ("mosquitto_sub", "naive", "ingest")]
            if args.cases:  # e.g. "1x1,1x10": QoS x readings per message
                wanted = {tuple(int(v) for v in c.split("x")) for c in args.cases.split(",")}
                plan = [p for p in plan if (p[0], p[2]) in wanted]
            for qos, kind, per_msg in plan:
                runs = [
                    measure(kind, qos, n if per_msg == 1 else n // 10, per_msg, mosq, influxd, work)
                    for _ in range(repeat)
                ]
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                rows.append((qos, kind, per_msg, med))
                print(
                    f"qos {qos} {kind:13s} x{per_msg:<2d} {med['msg_s']:>9.0f} msg/s "
                    f"{med['readings_s']:>9.0f} readings/s {med['cpu_us']:>6.1f} µs CPU/msg "
                    f"peak RSS {med['rss_mb']:.0f} MB",
                    flush=True,
                )
        finally:
            mosq.stop()
            influxd.stop()
    print("\nratios to mosquitto_sub (same QoS and message size), medians of", repeat, "runs:")
    base = {(q, p): m for q, k, p, m in rows if k == "mosquitto_sub"}
    naive = {(q, p): m for q, k, p, m in rows if k == "naive"}
    for qos, kind, per_msg, med in rows:
        b = base[(qos, per_msg)]
        line = f"qos {qos} x{per_msg:<2d} {kind:13s} {med['msg_s'] / b['msg_s']:.2f}x msg/s"
        if kind == "ingest":
            nv = naive[(qos, per_msg)]
            line += f"; CPU/msg {med['cpu_us'] / nv['cpu_us']:.2f}x the naive pipeline's"
        print(line)
    print(
        f"\nn = {n} messages per run (messages of 10 readings: n/10); {os.cpu_count()} CPUs;"
        f" driver peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )


if __name__ == "__main__":
    main()
