"""The harness's Mosquitto really persists (issue 9, "Also check"): started as root it drops
to the user `mosquitto`, so its persistence directory must be writable by that user, or a
broker-restart test passes or fails for the wrong reason."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho

from tests.services import MosquittoServer


def _client(port: int, client_id: str, *, clean: bool) -> paho.Client:
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def test_sessions_and_retained_messages_survive_a_broker_restart(tmp_path: Path) -> None:
    with MosquittoServer(tmp_path / "broker") as broker:
        sub_id = f"persist-{uuid.uuid4().hex[:6]}"
        sub = _client(broker.port, sub_id, clean=False)
        sub.subscribe("p/queued", qos=1)
        time.sleep(0.3)
        sub.disconnect()
        sub.loop_stop()
        pub = _client(broker.port, "persist-pub", clean=True)
        pub.publish("p/retained", b"kept", qos=1, retain=True).wait_for_publish(5)
        pub.publish("p/queued", b"waiting", qos=1).wait_for_publish(5)
        pub.disconnect()
        pub.loop_stop()

        broker.restart()  # SIGTERM: Mosquitto writes its database on the way out
        assert broker.persistence_file.exists(), broker.log_path.read_text()[-500:]
        assert "Permission denied" not in broker.log_path.read_text()

        got: dict[str, bytes] = {}
        sub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=sub_id, clean_session=False)
        sub.on_message = lambda _c, _u, m: got.__setitem__(m.topic, m.payload)
        sub.connect("127.0.0.1", broker.port)
        sub.subscribe("p/retained", qos=1)
        sub.loop_start()
        deadline = time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        sub.disconnect()
        sub.loop_stop()
    assert got == {"p/queued": b"waiting", "p/retained": b"kept"}
