"""A real paho subscriber that records every message it gets (test helper)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool


class Capture:
    def __init__(
        self, port: int, topic: str, qos: int = 1, username: tuple[str, str] | None = None
    ) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"cap-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        if username:
            self.client.username_pw_set(*username)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._subscribed.wait(10), "no SUBACK"

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Received(msg.topic, msg.payload, bool(msg.retain)))

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout_s: float = 20
    ) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.snapshot()
            if predicate(got):
                return got
            time.sleep(0.05)
        raise AssertionError(
            f"condition not met in {timeout_s}s; got {len(self.snapshot())} messages"
        )

    def wait_quiet(self, quiet_s: float = 0.5, timeout_s: float = 30) -> list[Received]:
        """Wait until no message arrived for `quiet_s`."""
        deadline = time.monotonic() + timeout_s
        count, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            n = len(self.messages)
            if n != count:
                count, since = n, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                break
            time.sleep(0.05)
        return self.snapshot()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def statuses(messages: list[Received], site: str, meter: str, prefix: str) -> list[str]:
    topic = f"{prefix}/{site}/{meter}/status"
    return [m.payload.decode() for m in messages if m.topic == topic]
