"""The HTTP API and live dashboard of a node (`ecocluster.api`).

from ecocluster.api import ApiDeps, ApiStage, HotWindowLive, create_app
stage = ApiStage(ApiDeps(cluster=…, settings=…, store=…, live=HotWindowLive(engine)))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ecocluster.api.alert_port import AlertPort
    from ecocluster.api.app import API_PREFIX, create_app
    from ecocluster.api.deps import ApiDeps
    from ecocluster.api.events import EventHub, ReadingFeed
    from ecocluster.api.live import HotWindowLive, LatestTable, LiveView
    from ecocluster.api.stage import ApiStage
    from ecocluster.api.tokens import Principal, TokenStore

#: Public names and the module that defines each, imported on first use (PEP 562): the CLI
#: registers `ecocluster token …` without paying for FastAPI (~0.7 s).
_EXPORTS: dict[str, str] = {
    "API_PREFIX": "ecocluster.api.app",
    "AlertPort": "ecocluster.api.alert_port",
    "ApiDeps": "ecocluster.api.deps",
    "ApiStage": "ecocluster.api.stage",
    "EventHub": "ecocluster.api.events",
    "HotWindowLive": "ecocluster.api.live",
    "LatestTable": "ecocluster.api.live",
    "LiveView": "ecocluster.api.live",
    "Principal": "ecocluster.api.tokens",
    "ReadingFeed": "ecocluster.api.events",
    "TokenStore": "ecocluster.api.tokens",
    "create_app": "ecocluster.api.app",
}

__all__ = [
    "API_PREFIX",
    "AlertPort",
    "ApiDeps",
    "ApiStage",
    "EventHub",
    "HotWindowLive",
    "LatestTable",
    "LiveView",
    "Principal",
    "ReadingFeed",
    "TokenStore",
    "create_app",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
