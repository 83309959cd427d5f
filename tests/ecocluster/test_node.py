"""The composition root: one table of stages, one lifespan of shared resources, one line
when a stage dies; `ecocluster run` waits for a broker that is not there yet and exits 1
with one line when the broker refuses its password."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from typer.testing import CliRunner

from ecocluster.cli import app
from ecocluster.core.registry import load_cluster
from ecocluster.core.settings import load_settings
from ecocluster.node import NodeState, StageFailed, _guarded, run_node
from ecocluster.stages import STAGES, StagePlanError, plan
from tests.services import MosquittoServer, free_port

CLUSTER = """\
territory: {id: test, name: Test, timezone: Europe/Rome}
organisations:
  - {id: o1, name: Org one, kind: private}
sites:
  - {id: s1, org: o1, name: Hotel, category: hotel, lat: 44.3, lon: 10.2}
meters:
  - {id: em-01, site: s1, quantities: [energy_kwh, power_w]}
rules:
  - {name: overload, type: threshold, quantity: power_w, above: 60000, severity: critical}
"""


@pytest.fixture
def cluster_path(tmp_path: Path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(CLUSTER)
    return path


def test_stages_are_declared_once_in_data_flow_order() -> None:
    names = [spec.name for spec in STAGES]
    assert names[:2] == ["ingest", "rules"]
    assert [s.name for s in plan(["rules", "ingest"])] == ["ingest", "rules"]
    assert [s.name for s in plan(None)] == names


@pytest.mark.parametrize(
    ("only", "message"),
    [(["rules"], "fed by ingest"), (["ingest", "bogus"], "unknown stage 'bogus'")],
)
def test_impossible_plans_are_refused(only: list[str], message: str) -> None:
    with pytest.raises(StagePlanError, match=message):
        plan(only)


def test_cli_refuses_an_unknown_stage_with_exit_2(cluster_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", "--config", str(cluster_path), "--only", "x"])
    assert result.exit_code == 2
    assert "unknown stage 'x'" in result.output and "Traceback" not in result.output


async def test_a_failing_stage_is_named_with_its_cause_in_one_line() -> None:
    class Broken:
        name = "codec"

        async def run(self, ready: asyncio.Event) -> None:
            raise KeyError("quantity")

    with pytest.raises(StageFailed) as caught:
        await _guarded(Broken(), asyncio.Event())
    assert str(caught.value) == "codec stage stopped: KeyError: 'quantity'"
    assert "\n" not in str(caught.value)


class _AlertWatcher:
    """A plain paho client on `{prefix}/_alerts/#`, as an alert stage elsewhere would be."""

    def __init__(self, port: int, prefix: str) -> None:
        self.alerts: list[dict[str, object]] = []
        self.got = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{prefix}/_alerts/#", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self.alerts.append({"topic": msg.topic, **orjson.loads(msg.payload)})
        self.got.set()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _publish_overload(port: int, prefix: str) -> None:
    meter = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    meter.connect("127.0.0.1", port)
    meter.loop_start()
    now = int(time.time() * 1000)
    payload = orjson.dumps(
        [{"ts": now - 1000, "m": {"power_w": 5000.0}}, {"ts": now, "m": {"power_w": 72000.0}}]
    )
    meter.publish(f"{prefix}/s1/em-01/data", payload, qos=1).wait_for_publish(10)
    meter.loop_stop()
    meter.disconnect()


@pytest.mark.e2e
async def test_overload_published_by_a_meter_comes_out_as_an_alert(
    tmp_path: Path, cluster_path: Path, mosquitto: MosquittoServer, topic_prefix: str
) -> None:
    settings = load_settings(
        {
            "mqtt_url": mosquitto.url,
            "mqtt_client_id": f"node-{topic_prefix}",
            "topic_prefix": topic_prefix,
            "data_dir": str(tmp_path / "data"),
            "ingest_flush_ms": 50,
        }
    )
    watcher = _AlertWatcher(mosquitto.port, topic_prefix)
    stop = asyncio.Event()
    states: list[NodeState] = []
    node = asyncio.create_task(
        run_node(load_cluster(cluster_path), settings, None, stop=stop, on_ready=states.append)
    )
    try:
        for _ in range(300):
            if states or node.done():
                break
            await asyncio.sleep(0.05)
        assert states, "node never became ready"
        _publish_overload(mosquitto.port, topic_prefix)
        assert await asyncio.to_thread(watcher.got.wait, 20), "no alert arrived"
    finally:
        stop.set()
        await asyncio.wait_for(node, 20)
        watcher.close()
    (alert,) = watcher.alerts
    assert alert["topic"] == f"{topic_prefix}/_alerts/s1/overload"
    assert alert["state"] == "firing" and alert["value"] == 72000.0
    assert alert["labels"]["meter"] == "em-01"  # type: ignore[index]
    assert (tmp_path / "data" / "rules-state.json").exists()  # pending/firing state is kept
    # One shared state: ingest wrote to the node's store and counted in the node's registry.
    (state,) = states
    assert set(state.stages) == {"ingest", "rules"}
    assert state.stages["ingest"].store is state.store  # type: ignore[attr-defined]
    assert state.engine is state.stages["rules"].engine  # type: ignore[attr-defined]
    accepted = state.metrics.get_sample_value("ecocluster_ingest_readings_accepted_total")
    assert accepted == 2.0


def _spawn_run(cluster_path: Path, tmp_path: Path, url: str, prefix: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "ECOCLUSTER_MQTT_URL": url,
        "ECOCLUSTER_TOPIC_PREFIX": prefix,
        "ECOCLUSTER_MQTT_CLIENT_ID": f"run-{prefix}",
        "ECOCLUSTER_DATA_DIR": str(tmp_path / "data"),
        "ECOCLUSTER_INGEST_FLUSH_MS": "50",
        "ECOCLUSTER_LOG_LEVEL": "INFO",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "ecocluster", "run", "--config", str(cluster_path)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def late_broker(tmp_path: Path) -> Iterator[MosquittoServer]:
    server = MosquittoServer(tmp_path / "late-broker", port=free_port())
    yield server
    server.stop()


@pytest.mark.e2e
@pytest.mark.slow
def test_run_waits_for_a_broker_that_is_not_there_yet(
    tmp_path: Path, cluster_path: Path, late_broker: MosquittoServer, topic_prefix: str
) -> None:
    proc = _spawn_run(cluster_path, tmp_path, late_broker.url, topic_prefix)
    try:
        time.sleep(6)
        assert proc.poll() is None, proc.communicate()[1]
        late_broker.start()
        watcher = _AlertWatcher(late_broker.port, topic_prefix)
        try:
            deadline = time.monotonic() + 30
            while not watcher.got.is_set() and time.monotonic() < deadline:
                _publish_overload(late_broker.port, topic_prefix)
                watcher.got.wait(3)
            assert watcher.got.is_set(), "the node never started working"
        finally:
            watcher.close()
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
    waiting = [line for line in err.splitlines() if "broker" in line.lower()]
    assert len(waiting) >= 2, err  # says so, more than once, while it waits
    assert "Traceback" not in err
    assert proc.returncode == 0, err


@pytest.mark.e2e
def test_run_exits_1_with_one_line_when_the_broker_refuses_the_password(
    tmp_path: Path, cluster_path: Path, topic_prefix: str
) -> None:
    passwords = tmp_path / "passwd"
    passwords.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), "ingest", "right"], check=True)
    # Mosquitto started as root drops to its own user, who must be able to read the file.
    for path in (tmp_path, *tmp_path.parents[:2]):
        path.chmod(0o755)
    passwords.chmod(0o644)
    server = MosquittoServer(tmp_path / "auth-broker", password_file=passwords)
    server.start()
    try:
        url = f"mqtt://ingest:wrong-secret@127.0.0.1:{server.port}"
        proc = _spawn_run(cluster_path, tmp_path, url, topic_prefix)
        _out, err = proc.communicate(timeout=60)
    finally:
        server.stop()
    assert proc.returncode == 1, err
    final = [line for line in err.splitlines() if line.startswith("node stopped:")]
    assert len(final) == 1, err
    assert "refused" in final[0].lower() or "not authori" in final[0].lower(), final[0]
    assert "wrong-secret" not in err and "Traceback" not in err
