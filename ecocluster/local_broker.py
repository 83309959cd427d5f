"""The broker a local run (`ecocluster demo`, `ecocluster eval`) publishes through: the
configured one when `ECOCLUSTER_MQTT_URL` is set, else a private Mosquitto found on the
PATH (started on a free loopback port in a temp dir), else the embedded amqtt broker
(about 2.5k msg/s at QoS 1: slower, MQTT 3.1.1 only).

    async with open_broker(settings) as broker:
        broker.url, broker.protocol, broker.description
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ecocluster.core.errors import FatalError
from ecocluster.core.settings import Settings
from ecocluster.embedded_broker import EmbeddedBroker

__all__ = ["BrokerChoice", "BrokerKind", "BrokerStartError", "open_broker"]

_START_S = 10.0


class BrokerStartError(FatalError):
    """The private Mosquitto did not start (its own last words are in the message)."""


@dataclass(frozen=True)
class BrokerChoice:
    url: str
    protocol: Literal["3.1.1", "5"]
    #: One line for the output; never holds credentials.
    description: str
    configured: bool = False


BrokerKind = Literal["auto", "mosquitto", "amqtt"]


@contextlib.asynccontextmanager
async def open_broker(
    settings: Settings, kind: BrokerKind = "auto", *, use_configured: bool = True
) -> AsyncIterator[BrokerChoice]:
    """`auto`: the configured broker if `ECOCLUSTER_MQTT_URL` is set (and `use_configured`),
    else a private Mosquitto if one is installed, else amqtt; `mosquitto` or `amqtt` force a
    private one."""
    if kind == "auto" and use_configured and os.environ.get("ECOCLUSTER_MQTT_URL"):
        yield BrokerChoice(
            settings.mqtt_url.get_secret_value(),
            settings.mqtt_protocol,
            f"configured broker {settings.mqtt} (MQTT {settings.mqtt_protocol})",
            configured=True,
        )
        return
    binary = shutil.which("mosquitto") or _sbin("mosquitto")
    if kind == "mosquitto" and not binary:
        raise BrokerStartError("--broker mosquitto: no mosquitto on PATH or in /usr/sbin")
    if binary and kind != "amqtt":
        with _mosquitto(binary) as port:
            yield BrokerChoice(
                f"mqtt://127.0.0.1:{port}",
                "5",
                f"private Mosquitto ({binary}) on 127.0.0.1:{port}",
            )
        return
    embedded = EmbeddedBroker()
    await embedded.start()
    try:
        yield BrokerChoice(
            embedded.url,
            "3.1.1",
            f"embedded amqtt on {embedded.url}"
            + (" (no mosquitto on PATH)" if kind == "auto" else ""),
        )
    finally:
        await embedded.stop()


def _sbin(name: str) -> str | None:
    """Debian installs mosquitto in /usr/sbin, outside a normal user's PATH."""
    path = Path("/usr/sbin") / name
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(port: int) -> str:
    # No persistence: the broker lives for one evaluation. Queues and the inflight window
    # raised, as in deploy/mosquitto.conf: Mosquitto's defaults drop QoS 1 messages for a
    # subscriber that falls behind (DESIGN.md, "Known pitfalls").
    return "\n".join(
        [
            f"listener {port} 127.0.0.1",
            "allow_anonymous true",
            "persistence false",
            "max_queued_messages 2000000",
            "max_queued_bytes 0",
            "max_inflight_messages 1000",
            "max_packet_size 1048576",
            "log_dest stdout",
            "log_type error",
            "log_type warning",
        ]
    )


@contextlib.contextmanager
def _mosquitto(binary: str) -> Iterator[int]:
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="ecocluster-mosquitto-") as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(_config(port) + "\n")
        os.chmod(tmp, 0o755)  # started as root, Mosquitto drops to its own user
        conf.chmod(0o644)
        log = (Path(tmp) / "mosquitto.log").open("wb")
        proc = subprocess.Popen(
            [binary, "-c", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            _wait_for_port(port, proc, Path(log.name))
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            log.close()


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            last = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise BrokerStartError(f"mosquitto exited with {proc.returncode}: {last[0]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise BrokerStartError(f"mosquitto did not listen on 127.0.0.1:{port} in {_START_S:.0f} s")
