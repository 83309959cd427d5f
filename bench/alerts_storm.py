"""A storm of 10,000 simultaneous breaches through the alert service: grouped by the route
(rule, site), storm-folded per contact, delivered over Apprise to a real HTTP receiver.

Prints the time from the transitions handed over to the outbox empty, the notifications
sent, and checks nothing is lost (every alert's code reached its contact in a group
notification or a summary). Baseline in the same process: one Apprise json:// notify to the
same receiver, so the figure reads as "storm backlog ≈ N single sends".

    .venv/bin/python -m bench.alerts_storm [--alerts 10000] [--sites 500] [--db-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ecocluster.alerts.channels import Outgoing, send
from ecocluster.alerts.service import AlertService
from ecocluster.alerts.stage import AlertStage
from ecocluster.core.registry import load_cluster
from ecocluster.core.settings import Settings
from ecocluster.core.transitions import Transition
from ecocluster.core.types import Severity
from tests.services import HttpReceiver


def cluster_text(port: int, sites: int, contacts: int) -> str:
    lines = [
        'territory: {id: storm, name: "Storm", timezone: Europe/Rome}',
        "organisations:",
        *[f"  - {{id: o{c}, name: Org {c}, kind: public}}" for c in range(contacts)],
        "sites:",
        *[
            f"  - {{id: s{i}, org: o{i % contacts}, name: Site {i}, category: office,"
            " lat: 44, lon: 10}"
            for i in range(sites)
        ],
        "contacts:",
        *[
            f"  - {{id: c{c}, name: C{c}, org: o{c}, roles: [facility_manager], "
            f'notify: ["json://127.0.0.1:{port}/c{c}"], language: en}}'
            for c in range(contacts)
        ],
        "routes:",
        "  - {notify: [role:facility_manager], group_wait: 0s}",
    ]
    return "\n".join(lines) + "\n"


async def run(n_alerts: int, n_sites: int, n_contacts: int, db_url: str | None) -> int:
    receiver = HttpReceiver()
    receiver.start()
    tmp = Path(tempfile.mkdtemp(prefix="alerts-storm-"))
    path = tmp / "cluster.yaml"
    path.write_text(cluster_text(receiver.port, n_sites, n_contacts))
    cluster = load_cluster(path)
    settings = Settings(data_dir=tmp)

    baseline = []
    for _ in range(20):
        t0 = time.perf_counter()
        send(f"json://127.0.0.1:{receiver.port}/baseline", Outgoing("t", "b", "text"), index=0)
        baseline.append(time.perf_counter() - t0)
    receiver.requests.clear()

    service = AlertService(cluster, settings, db_url=db_url or f"sqlite:///{tmp / 'a.sqlite'}")
    await service.start()
    now = service.clock.now_ms()
    per_site = max(n_alerts // n_sites, 1)
    storm = [
        Transition(
            "overload",
            "firing",
            "ok",
            Severity.CRITICAL,
            {
                "org": f"o{(i % n_sites) % n_contacts}",
                "site": f"s{i % n_sites}",
                "meter": f"m{i // n_sites}",
                "quantity": "power_w",
                "category": "office",
            },
            70_000.0,
            60_000.0,
            now,
            now,
        )
        for i in range(n_sites * per_site)
    ]
    stage = AlertStage(cluster, settings, service)
    task = asyncio.create_task(stage.run(asyncio.Event()))
    t0 = time.perf_counter()
    await service.on_transitions(storm)
    t_commit = time.perf_counter() - t0
    while True:
        await asyncio.sleep(0.05)
        left = await service.db.run(
            lambda c: c.exec_driver_sql(  # type: ignore[union-attr]
                "SELECT count(*) FROM outbox WHERE status IN ('pending','sending')"
            ).scalar()
        )
        groups = await service.db.run(
            lambda c: c.exec_driver_sql(  # type: ignore[union-attr]
                "SELECT count(*) FROM groups WHERE last_notified_ms IS NULL"
            ).scalar()
        )
        if left == 0 and groups == 0:
            break
        if time.perf_counter() - t0 > 120:
            print("backlog not cleared in 120 s", file=sys.stderr)
            break
    cleared = time.perf_counter() - t0
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    codes_told: dict[str, set[str]] = {}
    for r in receiver.requests:
        text = json.loads(r.body)["message"]
        codes_told.setdefault(r.path.strip("/"), set()).update(re.findall(r"\[(\d{4,})\]", text))
    alerts = await service.list_alerts(limit=10**9)
    lost = [a for a in alerts if a.code not in codes_told.get(f"c{a.labels['org'][1:]}", set())]
    per_contact = max(
        sum(1 for r in receiver.requests if r.path == f"/c{c}") for c in range(n_contacts)
    )
    await service.close()
    receiver.stop()
    base = statistics.median(baseline)
    print(
        f"storm: {len(storm)} breaches, {n_sites} groups, {n_contacts} contacts "
        f"(storm limit {settings.alert_storm_limit}/min)"
    )
    print(f"  committed in {t_commit:.2f} s; backlog cleared in {cleared:.2f} s (target <= 10 s)")
    print(
        f"  notifications sent: {len(receiver.requests)} (max {per_contact} per contact); "
        f"alerts lost: {len(lost)}"
    )
    print(
        f"  baseline single Apprise json:// send: {base * 1000:.1f} ms; "
        f"backlog = {cleared / base:.0f} single sends"
    )
    return 1 if lost or cleared > 10 else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--sites", type=int, default=500)
    parser.add_argument("--contacts", type=int, default=20)
    parser.add_argument("--db-url", default=None)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(run(args.alerts, args.sites, args.contacts, args.db_url)))


if __name__ == "__main__":
    main()
