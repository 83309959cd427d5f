"""A small synchronous paho client for ACL tests: connect result, SUBACK codes, messages."""

from __future__ import annotations

import ssl
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


class Client:
    """Connects on construction; `refused` holds the CONNACK reason when the broker says no."""

    def __init__(
        self,
        port: int,
        username: str | None = None,
        password: str | None = None,
        *,
        ca_file: Path | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.granted: list[int] = []
        self.refused: str | None = None
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._subacked = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}"
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca_file is not None:
            self.client.tls_set(ca_certs=str(ca_file), cert_reqs=ssl.CERT_REQUIRED)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        if not self._connected.wait(timeout_s):
            self.close()
            raise TimeoutError("no CONNACK")

    def _on_connect(self, _c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            self.refused = str(reason)
        self._connected.set()

    def _on_subscribe(self, _c: object, _u: object, _mid: int, codes: list, _p: object) -> None:
        self.granted = [int(getattr(c, "value", c)) for c in codes]
        self._subacked.set()

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload))

    def subscribe(self, topic: str) -> list[int]:
        self._subacked.clear()
        self.client.subscribe(topic, 1)
        assert self._subacked.wait(5), "no SUBACK"
        return self.granted

    def publish(self, topic: str, payload: bytes = b"x") -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(5)

    def received(self, wait_s: float = 0.0, until: int | None = None) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if until is not None and len(self.messages) >= until:
                break
            time.sleep(0.02)
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect_refused(port: int, username: str | None, password: str | None) -> str | None:
    """The CONNACK refusal reason, or None when the broker accepted the login."""
    client = Client(port, username, password)
    try:
        return client.refused
    finally:
        client.close()
