"""Per-request access to the shared state: `ApiDeps`, the caller's scope, the alert port."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ecocluster.api.alert_port import AlertPort
from ecocluster.api.deps import ApiDeps
from ecocluster.api.errors import Unavailable
from ecocluster.api.security import ACK, ALERTS, ALL, ASSIGN, DATA, METRICS, SILENCE, require
from ecocluster.api.tokens import Principal

__all__ = [
    "AckCaller",
    "AlertCaller",
    "AnyCaller",
    "AssignCaller",
    "DataCaller",
    "Deps",
    "MetricsCaller",
    "SilenceCaller",
    "alerts_of",
]


def _deps(request: Request) -> ApiDeps:
    deps: ApiDeps = request.app.state.deps
    return deps


Deps = Annotated[ApiDeps, Depends(_deps)]
AnyCaller = Annotated[Principal, Depends(require(ALL))]
DataCaller = Annotated[Principal, Depends(require(DATA))]
AlertCaller = Annotated[Principal, Depends(require(ALERTS))]
AckCaller = Annotated[Principal, Depends(require(ACK))]
AssignCaller = Annotated[Principal, Depends(require(ASSIGN))]
SilenceCaller = Annotated[Principal, Depends(require(SILENCE))]
MetricsCaller = Annotated[Principal, Depends(require(METRICS))]


def alerts_of(deps: ApiDeps) -> AlertPort:
    if deps.alerts is None:
        raise Unavailable("the alert service is not running in this node (run the alerts stage)")
    return deps.alerts
