"""Session fixtures for the real services every end-to-end test talks to.

A missing binary fails the suite with the command to install it; nothing silently skips.
"""

from __future__ import annotations

import os
import sys


def _prefer_the_installed_package() -> None:
    """Tests run against the installed `ecocluster`, never the source folder of the same name.

    The repository root is on sys.path (pytest's rootdir, `python -m`'s cwd) so that `tests`
    imports; but there `ecocluster/` is only the composition folder: `ecocluster.ingest` and
    the other stages are mapped in from sibling folders at install time (pyproject
    `package-dir`). Moving the root to the end lets site-packages (or an editable install's
    finder) answer `import ecocluster` first while `tests` still resolves.
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    mine = [p for p in sys.path if os.path.abspath(p or os.curdir) == root]
    for p in mine:
        sys.path.remove(p)
    sys.path.extend(mine)
    for name in [m for m in sys.modules if m == "ecocluster" or m.startswith("ecocluster.")]:
        del sys.modules[name]


_prefer_the_installed_package()
# The same for every `python -m ecocluster …` a test starts: do not put its cwd on sys.path.
os.environ["PYTHONSAFEPATH"] = "1"

import itertools  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.services import (  # noqa: E402
    HttpReceiver,
    InfluxServer,
    MissingBinaryError,
    MosquittoServer,
    SmtpServer,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_CLUSTER = REPO_ROOT / "deploy" / "cluster.example.yaml"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
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
