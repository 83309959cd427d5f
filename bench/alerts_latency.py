"""End-to-end alert latency: a `for: 0` threshold breach published on MQTT → ingest → rules
(instant evaluation) → alert service → outbox → Apprise json:// → a real HTTP receiver.

Default settings (rules tick, ingest batching, storm limit, retries); the route sends at
once (`group_wait: 0s`, what an emergency route is configured with: Alertmanager's 30 s
default would dominate every figure). Breaches are published at `--rate` per second over
200 organisations, each with its own facility manager, so the storm limit never folds.

Prints p50/p99 of reading-published → webhook-received, and of the alert side alone
(transition handed to the service → webhook received), plus, as the same-process baseline,
one direct Apprise json:// send to the same receiver.

    .venv/bin/python -m bench.alerts_latency [--alerts 1000] [--rate 20]
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import json
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from ecocluster.alerts.channels import Outgoing, send
from ecocluster.alerts.service import AlertService
from ecocluster.alerts.stage import AlertStage
from ecocluster.core.registry import load_cluster
from ecocluster.core.settings import Settings
from ecocluster.core.transitions import Transition
from ecocluster.ingest.stage import IngestStage
from ecocluster.ingest.stores.memory import MemoryStore
from ecocluster.rules.stage import RulesStage
from tests.services import MosquittoServer, free_port

ORGS = 200


class TimedReceiver:
    """An HTTP receiver noting the wall time each request arrived."""

    def __init__(self) -> None:
        self.port = free_port()
        self.hits: list[tuple[int, bytes]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.hits.append((time.time_ns(), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class TimedSink:
    """Notes when each site's transition reached the alert service, then hands it over."""

    def __init__(self, service: AlertService) -> None:
        self.service = service
        self.at_ns: dict[str, int] = {}

    async def on_transitions(self, transitions: Sequence[Transition]) -> None:
        now = time.time_ns()
        for tr in transitions:
            if tr.state == "firing":
                self.at_ns.setdefault(tr.labels.get("site", ""), now)
        await self.service.on_transitions(transitions)


def cluster_text(port: int, n_sites: int) -> str:
    lines = [
        'territory: {id: lat, name: "Latency", timezone: Europe/Rome}',
        "organisations:",
        *[f"  - {{id: o{c}, name: Org {c}, kind: private}}" for c in range(ORGS)],
        "sites:",
        *[
            f"  - {{id: s{i}, org: o{i % ORGS}, name: Site {i}, category: hotel, lat: 44, lon: 10}}"
            for i in range(n_sites)
        ],
        "meters:",
        *[f"  - {{id: em, site: s{i}, quantities: [power_w]}}" for i in range(n_sites)],
        "contacts:",
        *[
            f"  - {{id: c{c}, name: C{c}, org: o{c}, roles: [facility_manager], "
            f'notify: ["json://127.0.0.1:{port}/c{c}"], language: en}}'
            for c in range(ORGS)
        ],
        "rules:",
        "  - {name: overload, type: threshold, quantity: power_w, above: 60000,"
        " severity: critical}",
        "routes:",
        "  - {match: {severity: critical}, notify: [role:facility_manager], group_wait: 0s}",
    ]
    return "\n".join(lines) + "\n"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def run(n_alerts: int, rate: float) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="alerts-latency-"))
    broker = MosquittoServer(tmp / "mosquitto")
    broker.start()
    receiver = TimedReceiver()
    path = tmp / "cluster.yaml"
    path.write_text(cluster_text(receiver.port, n_alerts))
    cluster = load_cluster(path)
    settings = Settings(data_dir=tmp, mqtt_url=broker.url, mqtt_client_id="bench-ingest")
    baseline = []
    for _ in range(30):
        t0 = time.perf_counter()
        send(f"json://127.0.0.1:{receiver.port}/baseline", Outgoing("t", "b", "text"), index=0)
        baseline.append(time.perf_counter() - t0)
    receiver.hits.clear()

    service = AlertService(cluster, settings)
    await service.start()
    timed = TimedSink(service)
    rules = RulesStage(cluster, sinks=[timed], tick_s=settings.rules_tick_s)
    ingest = IngestStage(cluster, settings, store=MemoryStore(), sinks=[rules])
    alerts = AlertStage(cluster, settings, service)
    ready = [asyncio.Event() for _ in range(3)]
    tasks = [
        asyncio.create_task(s.run(r)) for s, r in zip((ingest, rules, alerts), ready, strict=True)
    ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 30)

    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pub")
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    published: dict[str, int] = {}
    for i in range(n_alerts):
        now_ns = time.time_ns()
        published[f"s{i}"] = now_ns
        payload = json.dumps({"ts": now_ns // 1_000_000, "m": {"power_w": 70_000.0}})
        pub.publish(f"{settings.topic_prefix}/s{i}/em/data", payload, qos=1)
        await asyncio.sleep(1 / rate)
    deadline = time.monotonic() + 30
    while len(receiver.hits) < n_alerts and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    pub.loop_stop()
    pub.disconnect()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await service.close()
    broker.stop()

    e2e, side = [], []
    for at_ns, body in receiver.hits:
        found = re.search(r"at Site (\d+)", json.loads(body)["title"])
        if not found:
            continue
        site = f"s{found.group(1)}"
        e2e.append((at_ns - published[site]) / 1e6)
        if site in timed.at_ns:
            side.append((at_ns - timed.at_ns[site]) / 1e6)
    base = statistics.median(baseline) * 1000
    print(f"alerts latency: {len(e2e)}/{n_alerts} breaches notified, published at {rate:g}/s")
    if not e2e:
        return 1
    print(
        f"  reading on MQTT -> webhook: p50 {pct(e2e, 50):.0f} ms, p99 {pct(e2e, 99):.0f} ms, "
        f"max {max(e2e):.0f} ms (target p99 <= 1000 ms)"
    )
    print(
        f"  transition -> webhook (alert side): p50 {pct(side, 50):.0f} ms, "
        f"p99 {pct(side, 99):.0f} ms"
    )
    print(
        f"  baseline one Apprise json:// send: {base:.1f} ms; e2e p99 = "
        f"{pct(e2e, 99) / base:.1f}x baseline"
    )
    return 0 if len(e2e) == n_alerts and pct(e2e, 99) <= 1000 else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(run(args.alerts, args.rate)))


if __name__ == "__main__":
    main()
