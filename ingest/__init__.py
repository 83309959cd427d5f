"""Ingest: MQTT subscription, payload codecs, validation, unit normalisation, batching,
store backends and the on-disk spool. First stage of `ingest → rules → alerts`.

`IngestStage(cluster, settings, sinks=[…]).run(ready)` is the stage; `make_store(settings)`
opens the configured store for the later stages' queries."""

from __future__ import annotations

from ecocluster.ingest.errors import (
    IngestError,
    PayloadError,
    Reason,
    SpoolFullError,
    StoreError,
    StoreRejected,
    StoreUnavailable,
)
from ecocluster.ingest.metrics import IngestMetrics
from ecocluster.ingest.stage import IngestStage
from ecocluster.ingest.stores import Store, make_store

__all__ = [
    "IngestError",
    "IngestMetrics",
    "IngestStage",
    "PayloadError",
    "Reason",
    "SpoolFullError",
    "Store",
    "StoreError",
    "StoreRejected",
    "StoreUnavailable",
    "make_store",
]
