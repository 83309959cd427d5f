"""Silences and inhibition: which firing alerts must not be notified now (pure).

Inhibition follows Alertmanager: while a source alert fires, targets with equal values of
the `equal` labels are muted; an alert never inhibits itself. Two rules are built in (the
territory's `inhibit_rules:` add to them): an offline meter or site (an `absence` rule
firing) mutes that meter's or site's other alerts, and a critical mutes the warning or info
of the same target (site, meter, quantity).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ecocluster.core.alerting import InhibitRule, Matcher, parse_matcher
from ecocluster.core.registry import Cluster

__all__ = ["Inhibitor", "builtin_rules"]

Labels = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class _Rule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]


def builtin_rules(cluster: Cluster) -> list[InhibitRule]:
    absence = sorted(r.name for r in cluster.rules if r.type == "absence")
    names = "|".join(absence) or "(?!)"  # (?!) never matches: no absence rule
    # An offline device's absence alert is never muted by the alerts it mutes (no cycle).
    rules = [
        InhibitRule(
            source_matchers=["severity=critical"],
            target_matchers=["severity=~warning|info", f"rule!~{names}"],
            equal=["site", "meter", "quantity"],
        )
    ]
    if absence:
        rules += [
            InhibitRule(
                source_matchers=[f"rule=~{names}", "meter=~.+"],
                target_matchers=[f"rule!~{names}"],
                equal=["site", "meter"],
            ),
            InhibitRule(
                source_matchers=[f"rule=~{names}", 'meter=""'],
                target_matchers=[f"rule!~{names}"],
                equal=["site"],
            ),
        ]
    return rules


class Inhibitor:
    """Built once per evaluation over the firing alerts; `inhibited(fp, labels)` is O(rules)."""

    def __init__(self, rules: Iterable[InhibitRule], firing: Sequence[tuple[str, Labels]]) -> None:
        self._rules = [
            _Rule(
                tuple(parse_matcher(t) for t in r.source_matchers),
                tuple(parse_matcher(t) for t in r.target_matchers),
                tuple(r.equal),
            )
            for r in rules
        ]
        self._sources: list[dict[tuple[str, ...], set[str]]] = []
        for rule in self._rules:
            index: dict[tuple[str, ...], set[str]] = defaultdict(set)
            for fp, labels in firing:
                if all(m.matches(labels) for m in rule.source):
                    index[tuple(labels.get(k, "") for k in rule.equal)].add(fp)
            self._sources.append(index)

    def inhibited(self, fp: str, labels: Labels) -> bool:
        for rule, index in zip(self._rules, self._sources, strict=True):
            if not index or not all(m.matches(labels) for m in rule.target):
                continue
            sources = index.get(tuple(labels.get(k, "") for k in rule.equal))
            if sources and (len(sources) > 1 or fp not in sources):
                return True
        return False
