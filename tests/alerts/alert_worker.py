"""A stand-alone alert process for the crash and HA tests:

    python -m tests.alerts.alert_worker CLUSTER DB_URL [--fire N] [--worker ID]
        [--mqtt URL --prefix P] [--dispatch N] [--metrics-port PORT]

runs the alert stage on the wall clock (firing N alerts first); with `--mqtt` it consumes
`{P}/_alerts/#` like `ecocluster run --only alerts`; with `--metrics-port` it serves its
Prometheus metrics. Logs go to stderr; "ready" is printed once it consumes."""

from __future__ import annotations

import argparse
import asyncio
import logging

from prometheus_client import CollectorRegistry, start_http_server
from pydantic import SecretStr

from ecocluster.alerts.service import AlertService
from ecocluster.alerts.stage import AlertStage
from ecocluster.core.registry import load_cluster
from ecocluster.core.settings import Settings
from tests.alerts.conftest import transition


async def main(args: argparse.Namespace) -> None:
    cluster = load_cluster(args.cluster)
    extra: dict[str, object] = {}
    if args.mqtt:
        extra = {
            "mqtt_url": SecretStr(args.mqtt),
            "topic_prefix": args.prefix,
            "mqtt_client_id": f"{args.prefix}-node",
        }
    settings = Settings(
        alert_storm_limit=10_000,
        alert_dispatch_workers=args.dispatch,
        alert_send_timeout_s=args.send_timeout,
        alert_worker_id=args.worker,
        alert_leader_poll_s=0.3,
        **extra,  # type: ignore[arg-type]
    )
    registry = CollectorRegistry()
    if args.metrics_port:
        start_http_server(args.metrics_port, addr="127.0.0.1", registry=registry)
    service = AlertService(cluster, settings, db_url=args.db_url, registry=registry)
    await service.start()
    if args.fire:
        now = service.clock.now_ms()
        await service.on_transitions(
            [transition(meter=f"m{i:03d}", at_ms=now) for i in range(args.fire)]
        )
    ready = asyncio.Event()
    stage = AlertStage(cluster, settings, service, consume_mqtt=bool(args.mqtt))
    task = asyncio.create_task(stage.run(ready))
    await ready.wait()
    print("ready", flush=True)
    await task


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("cluster")
    parser.add_argument("db_url")
    parser.add_argument("--fire", type=int, default=0)
    parser.add_argument("--worker", default=None)
    parser.add_argument("--mqtt", default=None)
    parser.add_argument("--prefix", default="eco")
    parser.add_argument("--dispatch", type=int, default=1)
    parser.add_argument("--send-timeout", type=float, default=30.0)
    parser.add_argument("--metrics-port", type=int, default=0)
    return parser.parse_args()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main(_args()))
