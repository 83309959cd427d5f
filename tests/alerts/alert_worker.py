"""A stand-alone alert process for the crash test: `python -m tests.alerts.alert_worker
CLUSTER DB_URL [--fire N]` runs the alert stage on the wall clock, firing N alerts first."""

from __future__ import annotations

import asyncio
import sys

from ecocluster.alerts.service import AlertService
from ecocluster.alerts.stage import AlertStage
from ecocluster.core.registry import load_cluster
from ecocluster.core.settings import Settings
from tests.alerts.conftest import transition


async def main(cluster_path: str, db_url: str, fire: int) -> None:
    cluster = load_cluster(cluster_path)
    settings = Settings(alert_storm_limit=10_000, alert_dispatch_workers=1)
    service = AlertService(cluster, settings, db_url=db_url)
    await service.start()
    if fire:
        now = service.clock.now_ms()
        await service.on_transitions(
            [transition(meter=f"m{i:03d}", at_ms=now) for i in range(fire)]
        )
    print("ready", flush=True)
    await AlertStage(cluster, settings, service).run(asyncio.Event())


if __name__ == "__main__":
    args = sys.argv[1:]
    count = int(args[args.index("--fire") + 1]) if "--fire" in args else 0
    asyncio.run(main(args[0], args[1], count))
