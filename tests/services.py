"""Real services for tests and benchmarks: Mosquitto, influxd, an SMTP server, an HTTP receiver.

Each starts on free loopback ports with its own temp directories, waits until it answers,
and can be stopped and started again on the same ports and data (for "store goes away
mid-stream" tests). Benchmarks import this module too (`from tests.services import ...`).
"""

from __future__ import annotations

import contextlib
import http.server
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import httpx

INSTALL_HINT = {
    "mosquitto": "apt-get install -y mosquitto mosquitto-clients",
    "mosquitto_pub": "apt-get install -y mosquitto-clients",
    "mosquitto_sub": "apt-get install -y mosquitto-clients",
    "influxd": "apt-get install -y influxdb",
}


class MissingBinaryError(RuntimeError):
    """A real service the tests need is not installed; the message says how to install it."""


def require_binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")
    if found is None:
        raise MissingBinaryError(
            f"{name} is not installed: run `{INSTALL_HINT.get(name, 'apt-get install ' + name)}` "
            f"(or ./scripts/test.sh, which installs it)"
        )
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, timeout_s: float = 15.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s}s")


class _Process:
    """A subprocess with a log file, restartable with the same command."""

    name = "service"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def wait_ready(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        if self.running:
            return
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        try:
            self.wait_ready()
        except Exception as exc:
            self.stop()
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} did not start: {exc}\n--- log ---\n{tail}") from exc

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> _Process:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _mosquitto_writable_dir(workdir: Path) -> Path:
    """A persistence directory the broker can write. Started as root, Mosquitto drops to
    the user `mosquitto`, which can neither write nor even reach a directory under pytest's
    root-only (0700) temp root: sessions would silently not survive a restart. So, as root,
    the directory is a fresh one under /tmp owned by `mosquitto` (removed with the server)."""
    if os.geteuid() != 0:
        return workdir
    try:
        owner = pwd.getpwnam("mosquitto")
    except KeyError:
        return workdir  # no such user: Mosquitto keeps running as root
    path = Path(tempfile.mkdtemp(prefix="ecocluster-mosquitto-"))
    os.chown(path, owner.pw_uid, owner.pw_gid)
    return path


class MosquittoServer(_Process):
    """A real Mosquitto with persistence and queue limits raised so QoS 1 loses nothing.

    Mosquitto's defaults (max_queued_messages 1000, max_inflight_messages 20) silently drop
    QoS 1 messages for a slow or absent persistent subscriber; see deploy/mosquitto.conf.
    """

    name = "mosquitto"

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        password_file: Path | None = None,
        acl_file: Path | None = None,
        max_queued_messages: int = 2_000_000,
        max_inflight_messages: int = 1000,
        config_file: Path | None = None,
    ) -> None:
        super().__init__(workdir)
        self.binary = require_binary("mosquitto")
        self.port = port or free_port()
        #: A complete configuration to run as is (e.g. `ecocluster broker-config`'s); `port`
        #: must then be one of its listeners (the one `wait_ready` waits for).
        self.config_file = config_file
        self.password_file = password_file
        self.acl_file = acl_file
        self.max_queued_messages = max_queued_messages
        self.max_inflight_messages = max_inflight_messages
        self.persistence_dir = _mosquitto_writable_dir(workdir)
        if self.persistence_dir != workdir:
            weakref.finalize(self, shutil.rmtree, self.persistence_dir, True)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def persistence_file(self) -> Path:
        """Where the broker saves sessions and retained messages (on shutdown and autosave)."""
        return self.persistence_dir / "mosquitto.db"

    def config_text(self) -> str:
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {self.persistence_dir}/",
            "autosave_interval 60",
            f"max_queued_messages {self.max_queued_messages}",
            "max_queued_bytes 0",
            f"max_inflight_messages {self.max_inflight_messages}",
            "max_packet_size 1048576",
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if self.password_file:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl_file:
            lines.append(f"acl_file {self.acl_file}")
        return "\n".join(lines) + "\n"

    def command(self) -> list[str]:
        if self.config_file is not None:
            return [self.binary, "-c", str(self.config_file)]
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config_text())
        return [self.binary, "-c", str(conf)]

    def wait_ready(self) -> None:
        wait_for_port(self.port, proc=self.proc)


class InfluxServer(_Process):
    """A real influxd (Debian's 1.6.7) serving the v1 HTTP API on a free port."""

    name = "influxd"

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        super().__init__(workdir)
        self.binary = require_binary("influxd")
        self.port = port or free_port()
        self.rpc_port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config_text(self) -> str:
        d = self.workdir
        return f"""
reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{d}/meta"
  logging-enabled = false
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
  wal-fsync-delay = "0s"
[coordinator]
  log-queries-after = "0s"
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = false
  log-enabled = false
  max-body-size = 0
[logging]
  level = "warn"
[continuous_queries]
  enabled = false
"""

    def command(self) -> list[str]:
        conf = self.workdir / "influxdb.conf"
        conf.write_text(self.config_text())
        return [self.binary, "-config", str(conf)]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"influxd exited with code {self.proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/ping", timeout=0.5).status_code == 204:
                    return
            time.sleep(0.1)
        raise TimeoutError("influxd did not answer /ping within 30s")

    def query(self, q: str, db: str | None = None) -> dict[str, Any]:
        """Run InfluxQL on /query (POST, so it may also create or drop databases)."""
        params = {"q": q, "epoch": "ms"}
        if db:
            params["db"] = db
        response = httpx.post(f"{self.url}/query", params=params, timeout=30)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def create_database(self, db: str) -> None:
        self.query(f'CREATE DATABASE "{db}"')

    def write_lines(self, db: str, lines: str, precision: str = "ms") -> None:
        response = httpx.post(
            f"{self.url}/write",
            params={"db": db, "precision": precision},
            content=lines.encode(),
            timeout=30,
        )
        if response.status_code != 204:
            raise RuntimeError(f"influx write failed {response.status_code}: {response.text}")


# -- SMTP ---------------------------------------------------------------------------------
@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: Message

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    def body_text(self) -> str:
        parts = self.message.walk() if self.message.is_multipart() else [self.message]
        texts = []
        for part in parts:
            if part.get_content_type() == "text/plain":
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes):
                    texts.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
        return "\n".join(texts)


@dataclass
class SmtpServer:
    """A real SMTP server (aiosmtpd) on a free port that records every message it accepts."""

    port: int = field(default_factory=free_port)
    messages: list[ReceivedMail] = field(default_factory=list)
    _controller: Any = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        server = self

        class _Handler:
            async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
                server.messages.append(
                    ReceivedMail(
                        envelope.mail_from,
                        list(envelope.rcpt_tos),
                        message_from_bytes(envelope.original_content or envelope.content),
                    )
                )
                return "250 Message accepted for delivery"

        self._controller = Controller(
            _Handler(), hostname="127.0.0.1", port=self.port, auth_require_tls=False
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[ReceivedMail]:
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.messages)


# -- HTTP receiver ------------------------------------------------------------------------
@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class HttpReceiver:
    """A real HTTP server that records every request (webhooks, Apprise json:// targets).

    `status` is the code it answers with: set it to 500 to play a failing channel.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[ReceivedRequest] = []
        self.status = 200
        self._lock = threading.Lock()
        receiver = self

        class _Handler(http.server.BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with receiver._lock:
                    receiver.requests.append(
                        ReceivedRequest(self.command, self.path, dict(self.headers), body)
                    )
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_POST = do_PUT = do_GET = _record

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[ReceivedRequest]:
        deadline = time.monotonic() + timeout_s
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._lock:
            return list(self.requests)


@contextlib.contextmanager
def started(service: Any) -> Iterator[Any]:
    service.start()
    try:
        yield service
    finally:
        service.stop()
