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
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from typer.testing import CliRunner

from ecocluster.cli import app
from ecocluster.core.registry import load_cluster
from ecocluster.core.settings import load_settings
from ecocluster.node import StageFailed, _guarded
from ecocluster.stages import STAGES, StagePlanError, plan
from tests.ecocluster.nodes import running_node
from tests.services import HttpReceiver, MosquittoServer, free_port

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
    # (`--only rules` alone works since issue 15: the rules worker reads the broker itself.)
    [(["ingest", "bogus"], "unknown stage 'bogus'"), (["nope"], "unknown stage 'nope'")],
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
    try:
        # no alert stage here: transitions go out on MQTT
        async with running_node(load_cluster(cluster_path), settings, ["ingest", "rules"]) as state:
            _publish_overload(mosquitto.port, topic_prefix)
            assert await asyncio.to_thread(watcher.got.wait, 20), "no alert arrived"
    finally:
        watcher.close()
    (alert,) = watcher.alerts
    assert alert["topic"] == f"{topic_prefix}/_alerts/s1/overload"
    assert alert["state"] == "firing" and alert["value"] == 72000.0
    assert alert["labels"]["meter"] == "em-01"  # type: ignore[index]
    assert (tmp_path / "data" / "rules-state.json").exists()  # pending/firing state is kept
    # One shared state: ingest wrote to the node's store and counted in the node's registry.
    assert set(state.stages) == {"ingest", "rules"}
    assert state.stages["ingest"].store is state.store  # type: ignore[attr-defined]
    assert state.engine is state.stages["rules"].engine  # type: ignore[attr-defined]
    accepted = state.metrics.get_sample_value("ecocluster_ingest_readings_accepted_total")
    assert accepted == 2.0


@pytest.mark.e2e
async def test_the_whole_node_turns_a_reading_into_a_notification(
    tmp_path: Path, mosquitto: MosquittoServer, http_receiver: HttpReceiver, topic_prefix: str
) -> None:
    """All stages in one node: the alert service is the rules' sink in-process, and the
    notification reaches a real webhook receiver through Apprise."""
    path = tmp_path / "c.yaml"
    path.write_text(
        CLUSTER
        + f"""contacts:
  - {{id: duty, name: Duty, org: o1, roles: [duty_officer],
     notify: ["json://127.0.0.1:{http_receiver.port}/duty"], language: en}}
routes:
  - {{match: {{severity: critical}}, notify: [duty], group_wait: 0s}}
"""
    )
    settings = load_settings(
        {
            "mqtt_url": mosquitto.url,
            "mqtt_client_id": f"full-{topic_prefix}",
            "api_port": 0,
            "topic_prefix": topic_prefix,
            "data_dir": str(tmp_path / "data"),
            "ingest_flush_ms": 50,
        }
    )
    async with running_node(load_cluster(path), settings) as state:
        before = len(http_receiver.requests)
        _publish_overload(mosquitto.port, topic_prefix)
        got = await asyncio.to_thread(http_receiver.wait_for, before + 1, 20)
    mine = [r for r in got[before:] if r.path.startswith("/duty")]
    assert mine, "no notification reached the receiver"
    body = orjson.loads(mine[0].body)
    text = f"{body.get('title', '')} {body.get('message', '')}"
    assert "s1" in text or "Hotel" in text, text
    assert set(state.stages) == {"ingest", "rules", "alerts", "api"}
    assert state.alerts is not None and state.alerts in state.transitions.sinks


def _spawn_run(cluster_path: Path, tmp_path: Path, url: str, prefix: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "ECOCLUSTER_MQTT_URL": url,
        "ECOCLUSTER_TOPIC_PREFIX": prefix,
        "ECOCLUSTER_MQTT_CLIENT_ID": f"run-{prefix}",
        "ECOCLUSTER_DATA_DIR": str(tmp_path / "data"),
        "ECOCLUSTER_INGEST_FLUSH_MS": "50",
        "ECOCLUSTER_LOG_LEVEL": "INFO",
        "ECOCLUSTER_API_PORT": "0",
    }
    return subprocess.Popen(
        # ingest and rules only: the transitions go out on `_alerts` where the test sees them
        [
            sys.executable,
            "-m",
            "ecocluster",
            "run",
            "--config",
            str(cluster_path),
            "--only",
            "ingest,rules",
        ],
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


class _StderrLines:
    """Collects a child's stderr lines as they come (the child keeps running)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stderr is not None
        self._stream = proc.stderr
        self._thread = threading.Thread(target=self._read, args=(proc.stderr,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line.rstrip("\n"))

    def close(self) -> None:
        self._thread.join(10)
        self._stream.close()

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(list(self.lines)):
                return True
            time.sleep(0.1)
        return False


@pytest.mark.e2e
@pytest.mark.slow
def test_run_waits_for_a_broker_that_is_not_there_yet(
    tmp_path: Path, cluster_path: Path, late_broker: MosquittoServer, topic_prefix: str
) -> None:
    proc = _spawn_run(cluster_path, tmp_path, late_broker.url, topic_prefix)
    stderr = _StderrLines(proc)
    address = f"127.0.0.1:{late_broker.port}"

    def retrying(lines: list[str]) -> list[str]:
        return [line for line in lines if "retrying" in line and address in line]

    try:
        # It says so, again and again (ingest and the rules publisher, every few seconds).
        assert stderr.wait_for(lambda lines: len(retrying(lines)) >= 3, 60), stderr.lines
        assert proc.poll() is None, stderr.lines
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
        proc.wait(timeout=30)
        stderr.close()
        assert proc.stdout is not None
        proc.stdout.close()
    assert not any("Traceback" in line for line in stderr.lines), stderr.lines
    assert proc.returncode == 0, stderr.lines
    assert all("\n" not in line for line in retrying(stderr.lines))


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
