"""Ingest: MQTT subscription, payload codecs, validation, unit normalisation, batching,
store backends and the on-disk spool. First stage of `ingest → rules → alerts`.

`IngestStage(cluster, settings, sinks=[…]).run(ready)` is the stage; `make_store(settings)`
opens the configured store for the later stages' queries."""

from __future__ import annotations

from ingest.errors import (
    IngestError,
    PayloadError,
    Reason,
    SpoolFullError,
    StoreError,
    StoreRejected,
    StoreUnavailable,
)
from ingest.metrics import IngestMetrics
from ingest.stage import IngestStage
from ingest.stores import Store, make_store

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
