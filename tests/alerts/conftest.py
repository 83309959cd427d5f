"""Fixtures for the alert service: a small territory written as a real cluster file, a
service on a fresh SQLite (or PostgreSQL) database, a hand-driven clock, transitions."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from ecocluster.alerts.clock import ManualClock
from ecocluster.alerts.service import AlertService
from ecocluster.core.registry import Cluster, load_cluster
from ecocluster.core.settings import Settings
from ecocluster.core.transitions import Transition
from ecocluster.core.types import Severity
from tests.services import HttpReceiver, SmtpServer

T0 = 1_767_258_000_000  # 2026-01-01 09:00 Europe/Rome (a Thursday)

BASE = """
territory: {{id: t, name: "Test Territory", timezone: Europe/Rome}}
organisations:
  - {{id: parco, name: Parco, kind: public}}
  - {{id: hotel, name: Hotel, kind: private}}
sites:
  - {{id: lago, org: hotel, name: "Hotel al Lago", category: hotel, lat: 44.3, lon: 10.2}}
  - {{id: sede, org: parco, name: "Sede Parco", category: office, lat: 44.4, lon: 10.3}}
meters:
  - {{id: em-01, site: lago, quantities: [power_w]}}
  - {{id: em-02, site: sede, quantities: [power_w]}}
contacts:
  - {{id: rossi, name: "Mario Rossi", org: parco, roles: [emergency_coordinator],
     notify: ["{hook}/rossi", "{mail}?to=rossi@example.org&from=alerts@example.org&mode=insecure"], language: it,
     phones: ["+393330000001"]}}
  - {{id: duty, name: "Park duty", org: parco, roles: [duty_officer],
     notify: ["{hook}/duty"], language: en}}
  - {{id: walker, name: "Sarah Walker", org: hotel, roles: [facility_manager],
     notify: ["{hook}/walker", "{mail}?to=walker@example.org&from=alerts@example.org&mode=insecure"], language: en}}
  - {{id: boss, name: "Direttrice", org: parco, roles: [cluster_coordinator],
     notify: ["{hook}/boss"], language: it}}
rules:
  - {{name: power-overload, type: threshold, quantity: power_w, above: 60000, severity: critical}}
  - {{name: data-absence, type: absence, after: 15m, severity: warning}}
"""

ROUTES = """
routes:
  - {match: {severity: critical}, notify: [rossi], escalate: chain, continue: true}
  - {match: {org: hotel}, notify: [walker], group_wait: 10s}
escalations:
  - {name: chain, steps: [{after: 10m, notify: [duty]}, {after: 30m, notify: [boss]}]}
"""


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    server = HttpReceiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_cluster(
    tmp_path: Path, receiver: HttpReceiver, smtp: SmtpServer
) -> Callable[[str], Cluster]:
    def make(extra: str = ROUTES) -> Cluster:
        hook = f"json://127.0.0.1:{receiver.port}"
        mail = f"mailto://127.0.0.1:{smtp.port}"
        text = BASE.format(hook=hook, mail=mail) + textwrap.dedent(extra)
        path = tmp_path / "cluster.yaml"
        path.write_text(text)
        return load_cluster(path)

    return make


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        public_base_url="https://eco.example.org",
        alert_retry_base_s=1.0,
        alert_send_timeout_s=10.0,
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'alerts.sqlite'}"


@pytest.fixture
async def make_service(
    settings: Settings, clock: ManualClock, db_url: str
) -> AsyncIterator[Callable[..., object]]:
    started: list[AlertService] = []

    async def make(cluster: Cluster, **kw: object) -> AlertService:
        svc = AlertService(cluster, kw.pop("settings", settings), clock=clock, db_url=db_url)  # type: ignore[arg-type]
        await svc.start()
        started.append(svc)
        return svc

    yield make
    for svc in started:
        await svc.close()


def transition(
    state: str = "firing",
    *,
    rule: str = "power-overload",
    site: str = "lago",
    org: str = "hotel",
    meter: str | None = "em-01",
    severity: Severity = Severity.CRITICAL,
    value: float = 72_000.0,
    at_ms: int = T0,
    since_ms: int | None = None,
) -> Transition:
    labels = {"org": org, "site": site, "category": "hotel", "quantity": "power_w"}
    if meter:
        labels["meter"] = meter
    return Transition(
        rule=rule,
        state=state,  # type: ignore[arg-type]
        previous="ok" if state == "firing" else "firing",
        severity=severity,
        labels=labels,
        value=value,
        threshold=60_000.0,
        since_ms=since_ms or at_ms,
        at_ms=at_ms,
        description="Power above the contract",
    )


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """A real PostgreSQL for the store contract (Debian's postgresql-15)."""
    from tests.services_pg import PostgresServer

    server = PostgresServer()
    server.start()
    yield server
    server.stop()
