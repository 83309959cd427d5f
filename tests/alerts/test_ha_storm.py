"""Alert HA end to end: two alert worker processes on one real PostgreSQL, both consuming
`{prefix}/_alerts/#` from a real Mosquitto; a storm of breaches with a two-step escalation;
the leader SIGKILLed mid-storm. The survivor takes the timer lease and delivers everything:
each notification at least once, at most one duplicate each, no escalation step twice."""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import create_engine, text

from tests.alerts.conftest import transition
from tests.services import HttpReceiver, MosquittoServer, free_port

N = 200
DISPATCH = 4  # send workers per process: at most this many in flight when one is killed
SEND_TIMEOUT_S = 4  # a claim's lease is this + 5 s: how long a dead worker's claims wait
STORM_ROUTES = """
routes:
  - {notify: [duty], group_wait: 0s, group_by: ['...'], escalate: storm}
escalations:
  - {name: storm, steps: [{after: 3s, notify: [boss]}, {after: 6s, notify: [duty]}]}
"""
#: What each alert must cause at the receiver: (contact, kind).
FIRING, STEP1, STEP2 = ("duty", "firing"), ("boss", "escalation"), ("duty", "escalation")


class _Worker:
    def __init__(
        self, name: str, cluster: Path, db_url: str, mqtt_url: str, prefix: str, log: Path
    ):
        self.name = name
        self.log = log
        self.metrics_port = free_port()
        env = {**os.environ, "PYTHONSAFEPATH": "1", "PYTHONPATH": os.getcwd()}
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.alerts.alert_worker",
                    str(cluster),
                    db_url,
                    "--worker",
                    name,
                    "--mqtt",
                    mqtt_url,
                    "--prefix",
                    prefix,
                    "--dispatch",
                    str(DISPATCH),
                    "--send-timeout",
                    str(SEND_TIMEOUT_S),
                    "--metrics-port",
                    str(self.metrics_port),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, needle: str, timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while needle not in self.text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no {needle!r} in\n{self.text()[-3000:]}")
            time.sleep(0.05)

    def metric(self, name: str) -> float:
        body = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5)
        for line in body.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"{self.name}: no metric {name}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _publish_storm(mosquitto: MosquittoServer, prefix: str) -> None:
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{prefix}-storm")
    pub.max_inflight_messages_set(100)
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    now = int(time.time() * 1000)
    infos = []
    for i in range(N):
        tr = transition(meter=f"m{i:03d}", at_ms=now)
        infos.append(pub.publish(f"{prefix}/_alerts/lago/{tr.rule}", tr.to_json(), qos=1))
    for info in infos:
        info.wait_for_publish(10)
    pub.loop_stop()
    pub.disconnect()


def _received(receiver: HttpReceiver) -> collections.Counter[tuple[tuple[str, str], str]]:
    """How often each ((contact, kind), alert code) arrived."""
    counts: collections.Counter[tuple[tuple[str, str], str]] = collections.Counter()
    for r in list(receiver.requests):
        body = json.loads(r.body)
        escalated = body["title"].startswith("[ESCALAT")  # ESCALATED (en), ESCALATION (it)
        kind = "escalation" if escalated else "firing"
        for code in re.findall(r"\[(\d+)\]", body["message"]):
            counts[((r.path.strip("/"), kind), code)] += 1
    return counts


def _count(got: collections.Counter[tuple[tuple[str, str], str]], what: tuple[str, str]) -> int:
    return len([1 for w, _ in got if w == what])


@pytest.mark.slow
@pytest.mark.e2e
def test_leader_killed_mid_storm_the_survivor_delivers_everything(
    make_cluster, tmp_path, receiver: HttpReceiver, mosquitto: MosquittoServer, postgres
) -> None:
    cluster = make_cluster(STORM_ROUTES)
    db_url = postgres.create_database(f"storm{uuid.uuid4().hex[:10]}")
    prefix = f"ha{uuid.uuid4().hex[:8]}"
    first = _Worker("w1", cluster.source, db_url, mosquitto.url, prefix, tmp_path / "w1.log")
    second: _Worker | None = None
    try:
        first.wait_for("ready")
        first.wait_for("took the leadership")
        assert re.search(r"w1:\d+ took the leadership", first.text())
        second = _Worker("w2", cluster.source, db_url, mosquitto.url, prefix, tmp_path / "w2.log")
        second.wait_for("ready")
        assert second.metric("ecocluster_alerts_leader") == 0.0
        assert first.metric("ecocluster_alerts_leader") == 1.0

        _publish_storm(mosquitto, prefix)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # kill the leader while it climbs step 1
            if _count(_received(receiver), STEP1) >= 20:
                break
            time.sleep(0.02)
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        at_kill = _received(receiver)
        assert 20 <= _count(at_kill, STEP1) < N, "not killed mid-step"
        assert _count(at_kill, STEP2) == 0, "step 2 already under way"

        second.wait_for("took the leadership", timeout_s=10)
        assert re.search(r"w2:\d+ took the leadership \(term \d+\)", second.text())
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            got = _received(receiver)
            if all(_count(got, what) >= N for what in (FIRING, STEP1, STEP2)):
                break
            time.sleep(0.2)
        time.sleep(0.5)  # anything sent twice arrives too
        assert second.metric("ecocluster_alerts_leader") == 1.0
        assert second.metric("ecocluster_alerts_leader_term") >= 2
    finally:
        first.stop()
        if second is not None:
            second.stop()

    got = _received(receiver)
    codes = {code for (code,) in _rows(db_url, "SELECT code FROM alerts")}
    assert len(codes) == N
    for what in (FIRING, STEP1, STEP2):  # each alert's firing, step 1, step 2: delivered
        assert {code for w, code in got if w == what} == codes, what
    duplicates = {k: n for k, n in got.items() if n > 1}
    assert max(got.values()) <= 2, duplicates  # at most one duplicate per notification
    assert len(duplicates) <= DISPATCH, duplicates  # only those in flight at the kill

    steps = _rows(
        db_url, "SELECT alert_id, detail FROM audit WHERE event = 'escalated' ORDER BY id"
    )
    per_alert = collections.Counter((a, json.loads(d)["step"]) for a, d in steps)
    assert len(per_alert) == 2 * N and set(per_alert.values()) == {1}  # no step fired twice
    fired = _rows(db_url, "SELECT count(*) FROM audit WHERE event = 'fired'")
    assert fired == [(N,)]  # both workers consumed every transition; applied once
    rows = _rows(
        db_url, "SELECT kind, count(*), count(DISTINCT idem_key) FROM outbox GROUP BY kind"
    )
    assert sorted(rows) == [("escalation", 2 * N, 2 * N), ("firing", N, N)]
    unsent = _rows(db_url, "SELECT count(*) FROM outbox WHERE status <> 'sent'")
    assert unsent == [(0,)]


def _rows(db_url: str, sql: str) -> list[tuple]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql)).all()]
    finally:
        engine.dispose()
