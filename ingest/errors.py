"""The ingest error tree and the reason codes of rejected input.

```
EcoclusterError (ecocluster.core.errors)
  x IngestError
      x PayloadError        → dead-letter + counter, never a crash (carries a `Reason`)
      x StoreError          the store did not do what was asked
          x StoreUnavailable   (+ TransientError) unreachable, timeouts, 5xx, locks: retry or spool
          x StoreRejected      the store refused some or all points of a write (a 4xx that is
                               not transient): dead-letter those, never count them as stored
          x StoreQueryError    (+ FatalError, ValueError) the store refused a query or a
                               statement (InfluxQL error, unknown database or retention policy)
          x StoreFatalError    (+ FatalError) retrying cannot help: credentials refused, a
                               misspelt retention policy, a corrupt database file
      x SpoolFullError      (+ TransientError) the spool's budget or its disk is full: stop
                            acknowledging until it drains or space returns
```
Each store adapter maps its library's exceptions into this tree in one place
(`map_store_errors` in `stores/influx.py` and `stores/duckdb.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from ecocluster.core.errors import EcoclusterError, FatalError, TransientError

__all__ = [
    "IngestError",
    "PayloadError",
    "Reason",
    "SpoolFullError",
    "StoreError",
    "StoreFatalError",
    "StoreQueryError",
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
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    SCHEMA = "schema"
    UNKNOWN_QUANTITY = "unknown_quantity"
    UNDECLARED_QUANTITY = "undeclared_quantity"
    WRONG_METER = "wrong_meter"
    UNIT = "unit"
    NOT_A_NUMBER = "not_a_number"
    NOT_FINITE = "not_finite"
    IMPLAUSIBLE = "implausible"
    BAD_TIME = "bad_time"
    NO_TIME = "no_time"
    FUTURE = "future"
    TOO_OLD = "too_old"
    BAD_STATUS = "bad_status"
    INTERNAL = "internal"
    STORE_REJECTED = "store_rejected"


class IngestError(EcoclusterError):
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
    """The store did not do what was asked."""


class StoreUnavailable(StoreError, TransientError):
    """The store could not be reached or failed transiently; the batch may be retried as is."""


class StoreRejected(StoreError):
    """The store refused points of a write: InfluxDB's 400/422 (a line it cannot parse, a
    field type conflict, points beyond the retention policy), or any other 4xx that retrying
    cannot fix.

    `rejected_idx` are row indices into the written batch and `reasons[i]` explains row i;
    the rows not named were stored. `dropped` is the count the store reported
    (`dropped=N`), when it reported one. A refusal that names no point names every row.
    """

    def __init__(
        self,
        message: str,
        rejected_idx: Sequence[int],
        reasons: Sequence[str],
        *,
        dropped: int | None = None,
    ) -> None:
        super().__init__(message)
        self.rejected_idx = list(rejected_idx)
        self.reasons = list(reasons)
        self.dropped = dropped


class StoreQueryError(StoreError, FatalError, ValueError):
    """The store refused a query or a statement (InfluxQL error, unknown retention policy).

    Also a `ValueError`, so that callers that treated a bad query as one keep working."""


class StoreFatalError(StoreError, FatalError):
    """Retrying cannot help: refused credentials, a misspelt retention policy, a corrupt or
    locked-for-good database file. The stage stops and names the cause in one line."""


class SpoolFullError(IngestError, TransientError):
    """The spool's budget or its disk is used up; the ingestor holds its acks until it drains
    or space returns."""
