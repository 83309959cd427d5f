"""An in-process MQTT broker (amqtt) for `ecocluster demo`: nothing to install.

amqtt speaks MQTT 3.1.1 only, so every client of the demo (ingestor included) must too.
It is a demo broker: anonymous, loopback only, no persistence across restarts. Production
uses Mosquitto or a broker cluster (see deploy/).
"""

from __future__ import annotations

import logging
import socket
import warnings
from typing import Any

__all__ = ["EmbeddedBroker"]

_log = logging.getLogger(__name__)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """Start with `await broker.start()`, stop with `await broker.stop()`; `url` for clients."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or _free_port(host)
        self._broker: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }

    async def start(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from amqtt.broker import Broker

            self._broker = Broker(self._config())
            await self._broker.start()
        # amqtt logs every connection at INFO; the demo's own summary is what matters.
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        _log.info("embedded MQTT broker (amqtt, MQTT 3.1.1) on %s", self.url)

    async def stop(self) -> None:
        if self._broker is not None:
            broker, self._broker = self._broker, None
            await broker.shutdown()
