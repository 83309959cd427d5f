"""The API stage: serves `create_app(deps)` with uvicorn inside the node's running loop.

    stage = ApiStage(deps)          # host/port from settings (ECOCLUSTER_API_HOST/_PORT)
    tg.create_task(stage.run(ready), name="api.run")

uvicorn's signal handlers are disabled: the node owns SIGINT/SIGTERM and stops stages by
cancelling them. On cancellation the server stops accepting, open live streams are told to
end, and in-flight requests get `shutdown_s` to finish. `port` is the bound port once
ready (useful with `api_port=0` in tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from enum import Enum

import uvicorn

from ecocluster.api.app import create_app
from ecocluster.api.deps import ApiDeps
from ecocluster.core.errors import FatalError

__all__ = ["ApiStage"]

_log = logging.getLogger(__name__)


class StageState(Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside a running loop whose owner handles SIGINT/SIGTERM (the node, the demo)."""

    def install_signal_handlers(self) -> None:  # the node owns the signals
        pass

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # uvicorn ≥ 0.29 handles signals here
        yield


class ApiStage:
    name = "api"

    def __init__(
        self,
        deps: ApiDeps,
        *,
        host: str | None = None,
        port: int | None = None,
        shutdown_s: float = 3.0,
    ) -> None:
        self.deps = deps
        self.app = create_app(deps)
        self.host = host or deps.settings.api_host
        self.port = deps.settings.api_port if port is None else port
        self.shutdown_s = shutdown_s
        self.state = StageState.NEW
        self._server: EmbeddedServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def run(self, ready: asyncio.Event) -> None:
        if self.state is not StageState.NEW:
            raise RuntimeError("ApiStage is single-use; create a new one")
        self.state = StageState.RUNNING
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=max(1, round(self.shutdown_s)),
            proxy_headers=False,
        )
        server = self._server = EmbeddedServer(config)
        serving = asyncio.create_task(server.serve(), name="api.uvicorn")
        feeding = await self._start_live_feed()
        try:
            while not server.started:
                if serving.done():
                    exc = serving.exception()
                    raise FatalError(
                        f"the API could not listen on {self.host}:{self.port}"
                        + (f": {exc}" if exc else " (address in use?)")
                    )
                await asyncio.sleep(0.02)
            sockets = [s for srv in server.servers for s in srv.sockets]
            if sockets:
                self.port = int(sockets[0].getsockname()[1])
            _log.info("API and dashboard on %s/dashboard", self.url)
            ready.set()
            # Shielded: cancelling the stage must not cancel uvicorn mid-loop (it would skip
            # its shutdown and leave the listening socket open); `_stop` asks it to exit.
            await asyncio.shield(serving)
        finally:
            if feeding is not None:
                feeding.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await feeding
            await self._stop(serving)
            self.state = StageState.CLOSED

    async def _start_live_feed(self) -> asyncio.Task[None] | None:
        """A live view with its own feed (`MqttLive`, for `--only api`) runs beside the
        server; the stage is ready once it is subscribed."""
        run = getattr(self.deps.live, "run", None)
        if run is None:
            return None
        live_ready = asyncio.Event()
        task = asyncio.create_task(run(live_ready), name="api.live")
        waiter = asyncio.create_task(live_ready.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            waiter.cancel()
            task.result()  # raises the feed's error (broker refused, …)
        return task

    async def _stop(self, serving: asyncio.Task[None]) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self.app.state.shutdown_event.set()
        if not serving.done():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(serving), self.shutdown_s + 2)
        if not serving.done():
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await serving
