"""The per-meter transport: one MQTT connection per simulated device, as in the field.

Each device has its own client id, the cluster file's credentials when it has them, a
retained last will `offline` on `…/status`, and publishes a retained `online` right after
its CONNACK (domain reference §7.4). A dropout fault shuts the device's socket without a
DISCONNECT, so the broker fires the will; at the dropout's end it connects again.

Thousands of paho clients share one thread: no paho loop threads, one `selectors` poll
over all sockets, `loop_read` on the readable ones, `loop_write` where paho has bytes
left, `loop_misc` once a second for keep-alive.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from ecocluster.core.settings import MqttTarget

from .payloads import Encoder, Message, status_topic
from .plan import SimPlan
from .shared import MqttConnectError, make_client

__all__ = ["DeviceFleet"]

_log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Device:
    idx: int
    client: mqtt.Client
    connected: bool = False
    dropped: bool = False
    refused: str = ""
    sock: socket.socket | None = field(default=None, repr=False)


class DeviceFleet:
    """`open()` connects every device; `send()` publishes from the message's device."""

    def __init__(
        self,
        target: MqttTarget,
        plan: SimPlan,
        encoder: Encoder,
        *,
        qos: int = 0,
        protocol: str = "3.1.1",
        keepalive_s: int = 60,
    ) -> None:
        self.target = target
        self.plan = plan
        self.encoder = encoder
        self.qos = qos
        self.protocol = protocol
        self.keepalive_s = keepalive_s
        self.devices: list[_Device] = []
        self._selector = selectors.DefaultSelector()
        self._last_misc = 0.0
        self._dirty: set[_Device] = set()
        self.sent = 0

    # -- lifecycle -------------------------------------------------------------------------
    def open(self, timeout_s: float = 60.0) -> None:
        """Connect every device and wait for all CONNACKs; on failure nothing stays open."""
        try:
            self._open(timeout_s)
        except BaseException:
            self._abort()
            raise

    def _abort(self) -> None:
        for d in self.devices:
            self._forget_socket(d)
            sock = d.client.socket()
            if sock is not None:
                sock.close()
        self._selector.close()

    def _open(self, timeout_s: float) -> None:
        for spec in self.plan.meters:
            client = make_client(
                spec.client_id,
                self.protocol,
                self.target,
                username=spec.mqtt_username,
                password=spec.mqtt_password,
            )
            will = status_topic(self.encoder.prefix, spec.site, spec.meter)
            client.will_set(will, "offline", qos=1, retain=True)
            client.max_inflight_messages_set(100)
            device = _Device(spec.index, client)
            client.on_connect = self._on_connect_for(device)
            self.devices.append(device)
            self._connect(device)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.poll(0.05)
            refused = [d for d in self.devices if d.refused]
            if refused:
                spec = self.plan.meters[refused[0].idx]
                raise MqttConnectError(
                    f"broker {self.target} refused {len(refused)} device(s), e.g. "
                    f"{spec.site}/{spec.meter}: {refused[0].refused}"
                )
            if all(d.connected for d in self.devices):
                _log.info("%d devices connected to %s", len(self.devices), self.target)
                return
        missing = sum(not d.connected for d in self.devices)
        raise MqttConnectError(f"{missing} device(s) got no CONNACK from {self.target}")

    def _on_connect_for(self, device: _Device):
        def on_connect(client: mqtt.Client, _u: object, _f: object, rc: object, _p: object) -> None:
            if getattr(rc, "is_failure", False):
                device.refused = str(rc)
                return
            device.connected = True
            client.publish(self.encoder.status(device.idx, True).topic, b"online", 1, True)

        return on_connect

    def _connect(self, device: _Device) -> None:
        try:
            device.client.connect(self.target.host, self.target.port, self.keepalive_s)
        except OSError as exc:
            raise MqttConnectError(f"cannot reach broker {self.target}: {exc}") from None
        device.sock = device.client.socket()  # type: ignore[assignment]
        if device.sock is not None:
            self._selector.register(device.sock, selectors.EVENT_READ, device)

    def _forget_socket(self, device: _Device) -> None:
        if device.sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(device.sock)
            device.sock = None

    def close(self) -> None:
        """Clean stop: every device says `offline` itself, then disconnects."""
        for d in self.devices:
            if d.connected and not d.dropped:
                d.client.publish(self.encoder.status(d.idx, False).topic, b"offline", 1, True)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and any(
            d.client.want_write() for d in self.devices if d.sock is not None
        ):
            self.poll(0.02)
        for d in self.devices:
            if d.sock is not None:
                d.client.disconnect()
                self._forget_socket(d)
        self._selector.close()

    # -- traffic ---------------------------------------------------------------------------
    def send(self, msg: Message) -> None:
        device = self.devices[msg.meter_idx]
        if msg.kind == "status":
            self._set_online(device, msg.payload == b"online")
            return
        if device.dropped or device.sock is None:
            return
        device.client.publish(msg.topic, msg.payload, self.qos)
        self.sent += 1
        if device.client.want_write():
            self._dirty.add(device)

    def _set_online(self, device: _Device, online: bool) -> None:
        if online and device.dropped:
            device.dropped = False
            device.connected = False
            self._connect(device)
        elif not online and not device.dropped:
            # An abrupt loss (no DISCONNECT): the broker publishes the will.
            device.dropped = True
            sock = device.sock
            self._forget_socket(device)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def poll(self, timeout_s: float) -> None:
        for key, _events in self._selector.select(max(timeout_s, 0.0)):
            device: _Device = key.data
            rc = device.client.loop_read()
            if rc != mqtt.MQTT_ERR_SUCCESS and not device.dropped:
                spec = self.plan.meters[device.idx]
                _log.warning("device %s/%s lost its connection (%s)", spec.site, spec.meter, rc)
                self._forget_socket(device)
            elif device.client.want_write():
                self._dirty.add(device)
        dirty, self._dirty = self._dirty, set()
        for d in dirty:
            if d.sock is not None and d.client.want_write():
                d.client.loop_write()
                if d.client.want_write():
                    self._dirty.add(d)
        now = time.monotonic()
        if now - self._last_misc >= 1.0:
            self._last_misc = now
            for d in self.devices:
                if d.sock is not None:
                    d.client.loop_misc()
