"""Debian's `nats-server` with JetStream and its MQTT listener (MQTT 3.1.1 only, QoS ≤ 1),
the broker cluster the scale-out can be tested against here. Restartable on the same
ports and store: MQTT sessions and QoS 1 messages live in JetStream streams on disk.
"""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path

from tests.services import _Process, free_port, require_binary, wait_for_port

__all__ = ["NatsServer"]


class NatsServer(_Process):
    name = "nats-server"

    def __init__(self, workdir: Path, *, mqtt_port: int | None = None) -> None:
        super().__init__(workdir)
        self.binary = require_binary("nats-server")
        self.port = free_port()
        self.mqtt_port = mqtt_port or free_port()

    @property
    def url(self) -> str:
        """The MQTT listener (what an ecocluster node connects to)."""
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    def config_text(self) -> str:
        store = self.workdir / "jetstream"
        return (
            f'server_name: "ecocluster-test-{self.mqtt_port}"\n'
            f"listen: 127.0.0.1:{self.port}\n"
            f'jetstream {{ store_dir: "{store}" }}\n'
            f"mqtt {{ host: 127.0.0.1, port: {self.mqtt_port}, max_ack_pending: 1000 }}\n"
        )

    def command(self) -> list[str]:
        conf = self.workdir / "nats.conf"
        conf.write_text(self.config_text())
        return [self.binary, "-c", str(conf)]

    def wait_ready(self) -> None:
        wait_for_port(self.mqtt_port, proc=self.proc)
        # The MQTT listener accepts before JetStream has its streams: wait for a CONNACK.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.mqtt_port), 1) as sock,
            ):
                sock.sendall(b"\x10\x0f\x00\x04MQTT\x04\x02\x00\x1e\x00\x03prb")
                sock.settimeout(2)
                if sock.recv(4) == b"\x20\x02\x00\x00":
                    return
            time.sleep(0.1)
        raise TimeoutError("nats-server's MQTT listener did not answer CONNECT")
