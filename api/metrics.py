"""The API's own Prometheus metrics, recorded by a pure ASGI middleware (no per-request
task or body buffering, so SSE streams pass straight through)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ApiMetrics", "MetricsMiddleware"]


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "ecocluster_api_requests",
            "HTTP requests, by handler and status",
            ["handler", "status"],
            registry=r,
        )
        self.seconds = Histogram(
            "ecocluster_api_request_seconds",
            "Time to the response head, by handler",
            ["handler"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.streams = Gauge("ecocluster_api_sse_clients", "Open live streams", registry=r)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                self._observe(scope, status["code"], start)
            await send(message)

        await self.app(scope, receive, send_wrapper)

    def _observe(self, scope: Scope, status: int, start: float) -> None:
        # The endpoint's name: stable whatever prefix the router was included under.
        route = scope.get("route")
        name = getattr(route, "name", None) or "unmatched"
        self.metrics.requests.labels(name, str(status)).inc()
        self.metrics.seconds.labels(name).observe(time.perf_counter() - start)
