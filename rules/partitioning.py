"""Which sites and which rules one worker takes when the stages run as several processes.

    share = WorkerShare.parse("1/3")           # or "aggregate", or None (everything)
    share.site_view(cluster)                   # ingest: only the sites this worker owns
    share.rules_view(cluster)                  # rules: those sites, and the rules it runs

Sites are split by `ecocluster.core.partition` (a stable rendezvous hash of the site id),
so ingest worker `k/n` and rules worker `k/n` own the same sites, and a meter's rule state
(its window, `for:` timers, flapping history, anomaly baselines) lives on exactly one
rules worker: the engine of worker `k/n` is built from a cluster that holds only its sites.

Organisation- and territory-scope rules sum over sites that several workers own. They are
evaluated by **one aggregation worker** (`--partition aggregate`) that subscribes to every
site and runs only those rules, while the `k/n` workers run only the series, meter and
site scopes. Why not per-worker partial sums combined over an internal topic: a sum of
partial sums is exact only when every worker's part covers the same instant, so the
combiner would have to align the workers' clocks and windows, and `for:`, flapping and
anomaly baselines would run on a signal that arrives in pieces and late. The aggregate
input is small (100,000 meters reporting once a minute are ~1.7k readings/s; one rules
worker consumes far more, `bench/rules_worker.py`), so one worker keeps the single-node
semantics exactly. Each aggregate rule is thus evaluated by exactly one process: never
by a `k/n` worker (n > 1), always by the aggregation worker, and by an unpartitioned
worker (no `--partition`, or `0/1`) together with everything else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from ecocluster.core.cluster import RuleSpec
from ecocluster.core.partition import Partition, parse_partition
from ecocluster.core.registry import Cluster

__all__ = ["AGGREGATE", "AGGREGATE_SCOPES", "WorkerShare", "is_aggregate_rule"]

AGGREGATE: Final = "aggregate"
#: Scopes whose targets span sites that different workers own.
AGGREGATE_SCOPES: Final = frozenset({"org", "territory"})


def is_aggregate_rule(rule: RuleSpec) -> bool:
    """True for a rule over an organisation's or the territory's sum/mean/min/max."""
    scope = getattr(rule, "scope", None) or (rule.model_extra or {}).get("scope", "series")
    return scope in AGGREGATE_SCOPES


@dataclass(frozen=True)
class WorkerShare:
    """One worker's share: `partition` k/n of the sites, or the aggregation worker (every
    site, only the org/territory rules), or everything (`WorkerShare()`)."""

    partition: Partition | None = None
    aggregate: bool = False

    def __post_init__(self) -> None:
        if self.aggregate and self.partition is not None:
            raise ValueError("the aggregation worker takes every site: no k/n with it")

    @classmethod
    def parse(cls, text: str | None) -> WorkerShare:
        """`None` → everything; `"aggregate"`; `"k/n"` (`ValueError` naming the text)."""
        if text is None or not text.strip():
            return cls()
        if text.strip().lower() == AGGREGATE:
            return cls(aggregate=True)
        return cls(parse_partition(text))

    @property
    def whole(self) -> bool:
        """Every site and every rule: no partition, or `0/1`."""
        return not self.aggregate and (self.partition is None or self.partition.count == 1)

    @property
    def partitioned(self) -> bool:
        """A `k/n` worker with n > 1: some sites only, no org/territory rules."""
        return self.partition is not None and self.partition.count > 1

    @property
    def suffix(self) -> str:
        """For client ids and file names: `""`, `"p1of3"` or `"aggregate"`."""
        if self.aggregate:
            return AGGREGATE
        return self.partition.suffix if self.partitioned and self.partition else ""

    def __str__(self) -> str:
        if self.aggregate:
            return AGGREGATE
        return str(self.partition) if self.partitioned else "all"

    def named(self, base: str, sep: str = "-") -> str:
        """`base` with this share's suffix (`ecocluster-ingest-p1of3`), or `base` alone."""
        return f"{base}{sep}{self.suffix}" if self.suffix else base

    # -- sites -----------------------------------------------------------------------------
    def owns_site(self, site: str) -> bool:
        return not self.partitioned or (self.partition is not None and self.partition.owns(site))

    def sites(self, cluster: Cluster) -> list[str]:
        """The ids of the cluster's sites this worker takes, in file order."""
        return [s.id for s in cluster.sites if self.owns_site(s.id)]

    def site_view(self, cluster: Cluster) -> Cluster:
        """The cluster with only this worker's sites and their meters (the same object when
        the worker takes every site)."""
        if not self.partitioned:
            return cluster
        mine = set(self.sites(cluster))
        return dataclasses.replace(
            cluster,
            sites=tuple(s for s in cluster.sites if s.id in mine),
            meters=tuple(m for m in cluster.meters if m.site in mine),
        )

    # -- rules -----------------------------------------------------------------------------
    def takes_rule(self, rule: RuleSpec) -> bool:
        if self.whole:
            return True
        return is_aggregate_rule(rule) == self.aggregate

    def left_out(self, rules: Iterable[RuleSpec]) -> list[str]:
        """Names of the rules another worker evaluates."""
        return [r.name for r in rules if not self.takes_rule(r)]

    def rules_view(self, cluster: Cluster) -> Cluster:
        """`site_view` with only the rules this worker evaluates; the kept rules' file
        locations are renumbered so compile errors still name the right line."""
        view = self.site_view(cluster)
        if self.whole:
            return view
        kept = [(i, r) for i, r in enumerate(cluster.rules) if self.takes_rule(r)]
        return dataclasses.replace(
            view,
            rules=tuple(r for _, r in kept),
            _locations=_renumber_rules(cluster._locations, [i for i, _ in kept]),
        )


def _renumber_rules(locations: dict[Any, Any], kept: list[int]) -> dict[Any, Any]:
    """Locations keyed `("rules", old, …)` moved to `("rules", new, …)`; others kept."""
    new_of = {old: new for new, old in enumerate(kept)}
    out: dict[Any, Any] = {}
    for path, where in locations.items():
        if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
            if path[1] not in new_of:
                continue
            path = ("rules", new_of[path[1]], *path[2:])
        out[path] = where
    return out
