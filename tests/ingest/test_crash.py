"""The ingestor SIGKILLed mid-stream and restarted loses nothing: persistent session, QoS 1,
acknowledge-after-durable (run as `python -m ecocluster run --only ingest`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import orjson
import pytest

from tests.ingest.conftest import Publisher
from tests.services import InfluxServer, MosquittoServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def _count(influxd: InfluxServer, db: str, quantity: str) -> int:
    doc = influxd.query(f'SELECT count(value) FROM "{quantity}"', db)
    series = doc["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def _wait(predicate, timeout_s: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_sigkill_mid_stream_loses_nothing(
    mosquitto: MosquittoServer,
    influxd: InfluxServer,
    influx_db: str,
    topic_prefix: str,
    small_cluster_path: Path,
    tmp_path: Path,
    publisher: Publisher,
) -> None:
    env = {
        **os.environ,
        "ECOCLUSTER_MQTT_URL": mosquitto.url,
        "ECOCLUSTER_MQTT_CLIENT_ID": f"crash-{uuid.uuid4().hex[:8]}",
        "ECOCLUSTER_TOPIC_PREFIX": topic_prefix,
        "ECOCLUSTER_INFLUX_URL": influxd.url,
        "ECOCLUSTER_INFLUX_DB": influx_db,
        "ECOCLUSTER_DATA_DIR": str(tmp_path / "data"),
        "ECOCLUSTER_INGEST_FLUSH_MS": "100",
    }
    cmd = [
        sys.executable,
        "-m",
        "ecocluster",
        "run",
        "--config",
        str(small_cluster_path),
        "--only",
        "ingest",
    ]
    log = (tmp_path / "ingest.log").open("ab")

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)

    proc = start()
    try:
        # subscribed once = the persistent session exists; from then on the broker keeps our messages
        probe = f"{topic_prefix}/s2/aq-01/data"
        assert _wait(
            lambda: (
                publisher.publish(
                    [(probe, orjson.dumps({"ts": int(time.time() * 1000), "m": {"temp_c": 1.0}}))]
                )
                and _count(influxd, influx_db, "temp_c") > 0
            ),
            30,
        ), (tmp_path / "ingest.log").read_text()
        n = 6000
        t0 = int(time.time() * 1000) - 2 * n * 1000
        msgs = [
            (
                f"{topic_prefix}/s1/em-01/data",
                orjson.dumps(
                    {"ts": t0 + i * 1000, "m": {"power_w": float(i), "energy_kwh": 10 + i * 0.001}}
                ),
            )
            for i in range(n)
        ]
        sender = threading.Thread(
            target=lambda: [
                publisher.publish(msgs[i : i + 200]) or time.sleep(0.02) for i in range(0, n, 200)
            ]
        )
        sender.start()
        assert _wait(lambda: _count(influxd, influx_db, "power_w") >= 1000, 30)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        stored_at_kill = _count(influxd, influx_db, "power_w")
        sender.join(60)
        proc = start()
        assert _wait(lambda: _count(influxd, influx_db, "power_w") >= n, 60), (
            f"stored {_count(influxd, influx_db, 'power_w')} of {n}"
        )
        assert stored_at_kill < n  # the kill really was mid-stream
        time.sleep(0.5)
        assert _count(influxd, influx_db, "power_w") == n  # exactly once (identity = series + time)
        doc = influxd.query('SELECT sum(delta) FROM "energy_kwh"', influx_db)
        assert doc["results"][0]["series"][0]["values"][0][1] == pytest.approx(
            (n - 1) * 0.001, rel=1e-6
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
