"""The ingest error tree and the reason codes of rejected input.

```
IngestError
  x PayloadError      → dead-letter + counter, never a crash (carries a `Reason`)
  x StoreError        → spool + retry
      x StoreUnavailable   the store cannot be reached (timeouts, 5xx, refused): retry or spool
      x StoreRejected      the store refused some points (400 partial write): dead-letter those
  x SpoolFullError    the on-disk spool reached its budget: stop acknowledging
```
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

__all__ = [
    "IngestError",
    "PayloadError",
    "Reason",
    "SpoolFullError",
    "StoreError",
    "StoreRejected",
    "StoreUnavailable",
]


class Reason(StrEnum):
    """Why a payload or a reading was rejected; the dead-letter log's and the counter's label."""

    PAYLOAD_TOO_LARGE = "payload_too_large"
    BAD_TOPIC = "bad_topic"
    BAD_ID = "bad_id"
    UNKNOWN_SITE = "unknown_site"
    UNKNOWN_METER = "unknown_meter"
    NOT_JSON = "not_json"
    SCHEMA = "schema"
    UNKNOWN_QUANTITY = "unknown_quantity"
    UNDECLARED_QUANTITY = "undeclared_quantity"
    UNIT = "unit"
    NOT_A_NUMBER = "not_a_number"
    NOT_FINITE = "not_finite"
    BAD_TIME = "bad_time"
    FUTURE = "future"
    TOO_OLD = "too_old"
    BAD_STATUS = "bad_status"
    STORE_REJECTED = "store_rejected"


class IngestError(Exception):
    """Base of every error the ingest stage raises on purpose."""


class PayloadError(IngestError):
    """A payload (or one reading of it) that cannot be stored; it goes to the dead-letter log."""

    def __init__(self, reason: Reason, message: str, *, topic: str = "", field: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.topic = topic
        self.field = field

    def __str__(self) -> str:
        where = f'field "{self.field}": ' if self.field else ""
        prefix = f"{self.topic}: " if self.topic else ""
        return f"{prefix}{where}{self.message}"


class StoreError(IngestError):
    """The store did not make a batch durable."""


class StoreUnavailable(StoreError):
    """The store could not be reached or failed transiently; the batch may be retried as is."""


class StoreRejected(StoreError):
    """The store refused some points and stored the rest (InfluxDB's 400 partial write).

    `rejected_idx` are row indices into the written batch; `reasons[i]` explains row i.
    """

    def __init__(self, message: str, rejected_idx: Sequence[int], reasons: Sequence[str]) -> None:
        super().__init__(message)
        self.rejected_idx = list(rejected_idx)
        self.reasons = list(reasons)


class SpoolFullError(IngestError):
    """The spool's disk budget is used up; the ingestor holds its acks until it drains."""
