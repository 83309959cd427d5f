"""Validation against the registry: topics → meters, then whole-array checks on decoded rows.

A topic is checked once and its verdict cached (a meter publishes on the same few topics
all day); the per-reading checks that remain after decoding (finite values, timestamps
inside `[now - max_age, now + max_future]`) are numpy masks over every row of a burst.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from ecocluster.core.registry import Cluster
from ecocluster.core.types import BoolArray, FloatArray, IntArray, is_valid_id
from ecocluster.ingest.errors import PayloadError, Reason

__all__ = ["Route", "RowChecks", "TopicRouter", "check_rows"]

Kind = Literal["data", "senml", "status"]
KINDS: Final = ("data", "senml", "status")
_CACHE_LIMIT: Final = 100_000


@dataclass(frozen=True, slots=True)
class Route:
    """Where a topic's readings go: the meter, and its quantities' series indices."""

    kind: Kind
    org: str
    site: str
    meter: str
    series_of: Mapping[str, int]


class TopicRouter:
    """`{prefix}/{site}/{meter}/{kind}` → `Route`, or the `PayloadError` that rejects it."""

    def __init__(self, cluster: Cluster, prefix: str) -> None:
        self._cluster = cluster
        self._prefix = prefix
        self._cache: dict[str, Route | PayloadError] = {}
        index = cluster.series_index
        self._series_of: dict[tuple[str, str], dict[str, int]] = {}
        for (site, meter, quantity), i in index.items():
            self._series_of.setdefault((site, meter), {})[quantity] = i

    def route(self, topic: str) -> Route | PayloadError:
        found = self._cache.get(topic)
        if found is None:
            found = self._resolve(topic)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()  # a flood of random topics must not grow memory
            self._cache[topic] = found
        return found

    def _resolve(self, topic: str) -> Route | PayloadError:
        parts = topic.split("/")
        if len(parts) != 4 or parts[0] != self._prefix or parts[3] not in KINDS:
            return PayloadError(
                Reason.BAD_TOPIC,
                f"topics are {self._prefix}/{{site}}/{{meter}}/data|senml|status",
                topic=topic,
            )
        _, site, meter, kind = parts
        for what, value in (("site", site), ("meter", meter)):
            if not is_valid_id(value):
                return PayloadError(Reason.BAD_ID, f"invalid {what} id {value!r:.70}", topic=topic)
        cluster = self._cluster
        if site not in cluster.site_by_id:
            return PayloadError(Reason.UNKNOWN_SITE, f"unknown site {site!r}", topic=topic)
        if cluster.meter(site, meter) is None:
            elsewhere = [m.site for m in cluster.meters if m.id == meter]
            hint = f" (it belongs to {elsewhere[0]})" if elsewhere else ""
            return PayloadError(
                Reason.UNKNOWN_METER, f"site {site!r} has no meter {meter!r}{hint}", topic=topic
            )
        org = cluster.site_by_id[site].org
        return Route(kind, org, site, meter, self._series_of.get((site, meter), {}))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class RowChecks:
    """The verdict on decoded rows: `keep` is the mask of good rows; each bad row has a reason."""

    keep: BoolArray
    bad_idx: IntArray
    reasons: list[Reason]


def check_rows(
    ts_ms: IntArray,
    values: FloatArray,
    *,
    now_ms: int,
    max_future_ms: int,
    max_age_ms: int,
) -> RowChecks:
    """Finite values, timestamps neither too far ahead nor too old; first failing check wins."""
    not_finite = ~np.isfinite(values)
    future = ts_ms > now_ms + max_future_ms
    too_old = ts_ms < now_ms - max_age_ms
    keep = ~(not_finite | future | too_old)
    bad_idx = np.flatnonzero(~keep)
    reasons = [
        Reason.NOT_FINITE if not_finite[i] else Reason.FUTURE if future[i] else Reason.TOO_OLD
        for i in bad_idx.tolist()
    ]
    return RowChecks(keep, bad_idx, reasons)
