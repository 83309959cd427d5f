"""Alertmanager's routing tree over the cluster file's `routes:` (pure functions).

The top-level list is the children of an implicit root that matches everything and carries
the defaults (group_wait 30s, group_interval 5m, repeat_interval 4h, group_by rule+site);
every node inherits the options it does not set from its parent. An alert descends from the
root: at each level the first matching child takes it unless that child says `continue`;
a node none of whose children match handles the alert itself (`dispatch/route.go`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from ecocluster.core.alerting import Matcher, Route, parse_matcher

__all__ = ["DEFAULT_OPTS", "RouteNode", "RouteOpts", "build_tree", "group_key", "match_routes"]


@dataclass(frozen=True, slots=True)
class RouteOpts:
    notify: tuple[str, ...] = ()
    escalate: str | None = None
    group_by: tuple[str, ...] = ("rule", "site")
    group_wait_ms: int = 30_000
    group_interval_ms: int = 300_000
    repeat_interval_ms: int = 4 * 3_600_000
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()


DEFAULT_OPTS = RouteOpts()


@dataclass(frozen=True, slots=True)
class RouteNode:
    key: str
    matchers: tuple[Matcher, ...]
    continue_: bool
    opts: RouteOpts
    children: tuple[RouteNode, ...] = field(default=())

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)


def _ms(value: object, fallback: int) -> int:
    return fallback if value is None else int(value.total_seconds() * 1000)  # type: ignore[attr-defined]


def _resolve(spec: Route, parent: RouteOpts, key: str) -> RouteNode:
    opts = replace(
        parent,
        notify=tuple(spec.notify) if spec.notify is not None else parent.notify,
        escalate=spec.escalate if spec.escalate is not None else parent.escalate,
        group_by=tuple(spec.group_by) if spec.group_by is not None else parent.group_by,
        group_wait_ms=_ms(spec.group_wait, parent.group_wait_ms),
        group_interval_ms=_ms(spec.group_interval, parent.group_interval_ms),
        repeat_interval_ms=_ms(spec.repeat_interval, parent.repeat_interval_ms),
        mute_time_intervals=tuple(spec.mute_time_intervals) or parent.mute_time_intervals,
        active_time_intervals=tuple(spec.active_time_intervals) or parent.active_time_intervals,
    )
    matchers = (
        [Matcher(k, "=", v) for k, v in spec.match.items()]
        + [Matcher(k, "=~", v) for k, v in spec.match_re.items()]
        + [parse_matcher(text) for text in spec.matchers]
    )
    children = tuple(_resolve(c, opts, f"{key}.{i}") for i, c in enumerate(spec.routes))
    return RouteNode(key, tuple(matchers), spec.continue_, opts, children)


def build_tree(routes: Sequence[Route], root_opts: RouteOpts = DEFAULT_OPTS) -> RouteNode:
    """The resolved tree; route keys are index paths (`root.2.0`), stable while the file's
    order is."""
    children = tuple(_resolve(r, root_opts, f"root.{i}") for i, r in enumerate(routes))
    return RouteNode("root", (), False, root_opts, children)


def match_routes(node: RouteNode, labels: Mapping[str, str]) -> list[RouteNode]:
    """Every route that handles `labels` (several through `continue`), in tree order."""
    if not node.matches(labels):
        return []
    found: list[RouteNode] = []
    for child in node.children:
        hits = match_routes(child, labels)
        found.extend(hits)
        if hits and not child.continue_:
            break
    return found or [node]


def group_key(opts: RouteOpts, labels: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """The aggregation group an alert joins on a route: its values of `group_by` ('...' =
    every label), as canonical JSON, and those labels."""
    if opts.group_by == ("...",):
        picked = dict(labels)
    else:
        picked = {k: labels.get(k, "") for k in opts.group_by}
    return json.dumps(picked, sort_keys=True, separators=(",", ":")), picked
