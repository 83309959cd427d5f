"""The demo's local notification channel: a loopback webhook that Apprise delivers to.

`ecocluster demo` must not reach the internet, yet its notifications should be real: each
contact's channels are replaced by `json://127.0.0.1:{port}/{contact}` (plus any `--notify`
URL the user gives), so every notification travels the alert service's real outbox and
Apprise, and lands here, in `notifications.jsonl` under the demo's data dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import orjson
import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from ecocluster.api.stage import EmbeddedServer
from ecocluster.core.registry import Cluster

__all__ = ["LocalNotificationLog", "with_demo_channels"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalNotificationLog:
    """Receives Apprise `json://` posts and appends them, one JSON object per line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = _free_port()
        self.received: Counter[str] = Counter()
        app = Starlette(routes=[Route("/{contact}", self._receive, methods=["POST"])])
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = EmbeddedServer(config)  # the demo owns Ctrl-C

    def url_for(self, contact: str) -> str:
        return f"json://127.0.0.1:{self.port}/{contact}"

    async def _receive(self, request: Request) -> PlainTextResponse:
        contact = request.path_params["contact"]
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return PlainTextResponse("not json", status_code=400)
        entry = {"received_ms": time.time_ns() // 1_000_000, "contact": contact, **body}
        with self.path.open("ab") as log:
            log.write(orjson.dumps(entry) + b"\n")
        self.received[contact] += 1
        return PlainTextResponse("ok")

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[LocalNotificationLog]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        task = asyncio.create_task(self._server.serve(), name="demo.notifications")
        while not self._server.started and not task.done():  # noqa: ASYNC110 (uvicorn has no event)
            await asyncio.sleep(0.02)
        try:
            yield self
        finally:
            self._server.should_exit = True
            await task


def with_demo_channels(
    cluster: Cluster, log: LocalNotificationLog, extra: Sequence[str]
) -> Cluster:
    """The same territory with every contact reachable only on loopback (and on `extra`,
    the URLs the user passed with `--notify`): the example's addresses are not real."""
    contacts = tuple(
        contact.model_copy(
            update={"notify": [SecretStr(log.url_for(contact.id)), *map(SecretStr, extra)]}
        )
        for contact in cluster.contacts
    )
    return dataclasses.replace(cluster, contacts=contacts)
