"""Everything the API reads, handed over by the composition root as one typed object.

    deps = ApiDeps(cluster=cluster, settings=settings, store=store,
                   live=HotWindowLive(rules.engine), alerts=alert_service_port,
                   registries=[ingest.metrics.registry], tokens=TokenStore(path))
    app = create_app(deps)

`alerts` may be None (no alert stage in this node): alert routes then answer 503 with a
clear error. `checks` adds readiness probes (name → coroutine raising when not ready); a
broker probe (TCP connect to `settings.mqtt`) is added unless one named "broker" is given.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry

from ecocluster.api.alert_port import AlertPort, GuardedAlerts
from ecocluster.api.events import EventHub
from ecocluster.api.live import LiveView
from ecocluster.api.tokens import TokenStore
from ecocluster.core.registry import Cluster
from ecocluster.core.settings import Settings
from ecocluster.ingest.stores.base import Store

__all__ = ["TOKENS_FILE", "ApiDeps", "wall_ms"]

TOKENS_FILE = "api-tokens.sqlite"


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class ApiDeps:
    cluster: Cluster
    settings: Settings
    store: Store
    live: LiveView
    alerts: AlertPort | None = None
    registries: Sequence[CollectorRegistry] = ()
    tokens: TokenStore | None = None
    hub: EventHub = field(default_factory=EventHub)
    checks: Mapping[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)
    #: Epoch ms "now": wall time, or a simulation's clock (the demo).
    clock: Callable[[], int] = wall_ms

    def __post_init__(self) -> None:
        if self.alerts is not None and not isinstance(self.alerts, GuardedAlerts):
            # A dynamic proxy (`__getattr__`) that keeps the port's interface.
            self.alerts = cast("AlertPort", GuardedAlerts(self.alerts))
        if self.tokens is None:
            self.tokens = TokenStore(Path(self.settings.data_dir) / TOKENS_FILE)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.cluster.territory.timezone)

    @property
    def token_store(self) -> TokenStore:
        assert self.tokens is not None
        return self.tokens
