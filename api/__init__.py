"""The HTTP API and live dashboard of a node (`ecocluster.api`).

from ecocluster.api import ApiDeps, ApiStage, HotWindowLive, create_app
stage = ApiStage(ApiDeps(cluster=…, settings=…, store=…, live=HotWindowLive(engine)))
"""

from __future__ import annotations

from ecocluster.api.alert_port import AlertPort
from ecocluster.api.app import API_PREFIX, create_app
from ecocluster.api.deps import ApiDeps
from ecocluster.api.events import EventHub, ReadingFeed
from ecocluster.api.live import HotWindowLive, LatestTable, LiveView
from ecocluster.api.stage import ApiStage
from ecocluster.api.tokens import Principal, TokenStore

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
