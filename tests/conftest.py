"""Session fixtures for the real services every end-to-end test talks to.

A missing binary fails the suite with the command to install it; nothing silently skips.
"""

from __future__ import annotations

import os

# The same for every `python -m ecocluster …` a test starts: do not put its cwd on sys.path.
os.environ["PYTHONSAFEPATH"] = "1"

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import (
    HttpReceiver,
    InfluxServer,
    MissingBinaryError,
    MosquittoServer,
    SmtpServer,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_CLUSTER = REPO_ROOT / "deploy" / "cluster.example.yaml"


def _shared_data() -> Path:
    """The project's shared public data sets (`../shared/data` beside the checkout; a CI
    checkout elsewhere finds them with `ECOCLUSTER_SHARED_DATA` or at /work/shared/data)."""
    candidates = [
        Path(os.environ["ECOCLUSTER_SHARED_DATA"])
        if "ECOCLUSTER_SHARED_DATA" in os.environ
        else None,
        REPO_ROOT.parent / "shared" / "data",
        Path("/work/shared/data"),
    ]
    found = [c for c in candidates if c is not None and c.is_dir()]
    return found[0] if found else REPO_ROOT.parent / "shared" / "data"


SHARED_DATA = _shared_data()
_counter = itertools.count()


def _start(service_factory):  # type: ignore[no-untyped-def]
    try:
        service = service_factory()
    except MissingBinaryError as exc:
        pytest.fail(str(exc), pytrace=False)
    service.start()
    return service


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    """A real Mosquitto on a free loopback port, persistence in a temp dir."""
    server = _start(lambda: MosquittoServer(tmp_path_factory.mktemp("mosquitto")))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    """A real influxd (v1 HTTP API) on a free loopback port."""
    server = _start(lambda: InfluxServer(tmp_path_factory.mktemp("influxd")))
    yield server
    server.stop()


@pytest.fixture
def influx_db(influxd: InfluxServer) -> Iterator[str]:
    """A fresh database name per test (created by the test or the store), dropped afterwards."""
    name = f"t{next(_counter)}_{uuid.uuid4().hex[:8]}"
    yield name
    influxd.query(f'DROP DATABASE "{name}"')


@pytest.fixture
def topic_prefix() -> str:
    """A unique topic prefix per test, so tests sharing the broker never see each other."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def example_cluster_path() -> Path:
    return EXAMPLE_CLUSTER
