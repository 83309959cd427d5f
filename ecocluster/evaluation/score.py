"""Scoring alerts against the simulator's ground truth: pure functions, no I/O.

Shared by `ecocluster eval` and reusable by `bench/detection.py`. The definitions (the
same as the detection benchmark's):

- a fault kind's **detectors** are the rules of the types that can see it (`DETECTORS`:
  an overload is seen by a threshold on `power_w`, a leak by `night_flow`, …), read from
  the cluster file's own rules;
- a fault is **found** when one of its kind's detectors fires on the fault's meter between
  the fault's start and its end plus the kind's grace (a leak's night is judged once the
  night is over: a day; a spike's burst rule within 5 minutes); **time to detect** is the
  first such firing minus the fault's start;
- a firing is **explained** when any fault on the same meter covers it (start to end plus
  that fault's grace); **precision** of a kind is the explained share of its detectors'
  firings; **false alarms** are unexplained firings, per 100 meter-days;
- a firing is a transition to `firing` from another state (a re-sent firing on a
  severity change is not a new alarm).

Kinds no rule type exists for are handled by ingest (`HANDLED_BY_INGEST`); their
per-fault outcome comes from `ecocluster.evaluation.ingest_checks`.

    scores = score_run(cluster.rules, truth, firings, meter_days=103 * 0.5)
    rows = summarise([scores, ...])
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = [
    "DAY_MS",
    "DETECTORS",
    "HANDLED_BY_INGEST",
    "MIN_MS",
    "Detector",
    "FaultOutcome",
    "Firing",
    "KindRow",
    "RuleRow",
    "RunScore",
    "Summary",
    "percentile",
    "score_run",
    "summarise",
]

MIN_MS = 60_000
DAY_MS = 86_400_000
AIR_QUANTITIES = frozenset({"pm10_ugm3", "pm25_ugm3", "no2_ugm3", "o3_ugm3", "so2_ugm3", "co_mgm3"})


class RuleLike(Protocol):
    """What scoring needs of a rule: the cluster file's `RuleSpec` or the engine's rule."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def quantity(self) -> str | None: ...


@dataclass(frozen=True)
class Detector:
    """Which rules can see a fault kind, and how long after the fault a first firing still
    counts (the rule's own delay: a night is judged once it is over)."""

    rule_types: frozenset[str]
    quantities: frozenset[str] | None
    grace_ms: int
    what: str

    def matches(self, rule: RuleLike) -> bool:
        if rule.type not in self.rule_types:
            return False
        return self.quantities is None or rule.quantity in self.quantities


DETECTORS: dict[str, Detector] = {
    "overload": Detector(frozenset({"threshold"}), frozenset({"power_w"}), 5 * MIN_MS,
                         "threshold on power_w"),
    "spike": Detector(frozenset({"burst"}), frozenset({"power_w"}), 5 * MIN_MS,
                      "burst on power_w"),
    "leak": Detector(frozenset({"night_flow"}), None, DAY_MS, "night_flow"),
    "burst": Detector(frozenset({"burst"}), frozenset({"flow_lpm"}), 10 * MIN_MS,
                      "burst on flow_lpm"),
    "stuck": Detector(frozenset({"stuck"}), None, 10 * MIN_MS, "stuck"),
    "dropout": Detector(frozenset({"absence"}), None, 5 * MIN_MS, "absence"),
    "air_episode": Detector(frozenset({"threshold"}), AIR_QUANTITIES, DAY_MS,
                            "threshold on an air quantity"),
}  # fmt: skip
#: Fault kinds no rule type exists for: what handles them instead.
HANDLED_BY_INGEST: dict[str, str] = {
    "clock_skew": "ingest: timestamp check (future readings refused)",
    "malformed": "ingest: payload rejection (dead-letter log)",
    "hostile_ids": "ingest: id validation (dead-letter log)",
    "counter_reset": "ingest: register deltas (flagged; no negative or giant delta)",
    "meter_replacement": "ingest: register deltas (flagged; no negative or giant delta)",
}
#: How long after a fault a firing on its meter is still explained by it: the kind's
#: grace, a day for kinds no rule detects (as bench/detection.py counts them).
_EXPLAIN_GRACE_MS: dict[str, int] = {kind: d.grace_ms for kind, d in DETECTORS.items()}
_DEFAULT_EXPLAIN_MS = DAY_MS


@dataclass(frozen=True, slots=True)
class Firing:
    """One alarm: a (rule, target) went to `firing` at `at_ms` (event time).
    `latency_s`: wall seconds from the publish of the reading that made it to the
    transition (None when not measured)."""

    rule: str
    site: str
    meter: str
    at_ms: int
    latency_s: float | None = None


@dataclass
class FaultOutcome:
    """One ground-truth fault and what became of it."""

    id: str
    kind: str
    site: str
    meter: str
    quantity: str | None
    start_ms: int
    end_ms: int
    found: bool = False
    ttd_min: float | None = None
    first_rule: str | None = None
    #: For ingest-handled kinds: what ingest did (e.g. "rejected 12/12: not_json 3, …").
    detail: str = ""
    #: Evidence for the plots: the counts behind `detail` by reason.
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass
class RunScore:
    """The score of one run (one seed of one scenario)."""

    seed: int
    scenario: str
    meter_days: float
    rules: dict[str, str]  # rule name → type, in the file's order
    detectors: dict[str, list[str]]  # fault kind → its detector rules in this file
    faults: list[FaultOutcome]
    firings: list[Firing]
    explained: list[bool]

    def kind_firings(self, kind: str) -> tuple[int, int]:
        """(firings of the kind's detectors, how many of them a fault explains)."""
        mine = set(self.detectors.get(kind, ()))
        pairs = [e for f, e in zip(self.firings, self.explained, strict=True) if f.rule in mine]
        return len(pairs), sum(pairs)


def _records(truth: Iterable[Mapping[str, Any]]) -> list[FaultOutcome]:
    return [
        FaultOutcome(
            id=str(r["id"]),
            kind=str(r["kind"]),
            site=str(r["site"]),
            meter=str(r["meter"]),
            quantity=r.get("quantity"),
            start_ms=int(r["start_ms"]),
            end_ms=int(r["end_ms"]),
        )
        for r in truth
    ]


def score_run(
    rules: Sequence[RuleLike],
    truth: Iterable[Mapping[str, Any]],
    firings: Sequence[Firing],
    *,
    meter_days: float,
    seed: int = 0,
    scenario: str = "",
) -> RunScore:
    """Match firings to ground-truth faults (see the module docstring for definitions)."""
    faults = _records(truth)
    detectors = {kind: [r.name for r in rules if d.matches(r)] for kind, d in DETECTORS.items()}
    by_meter: dict[tuple[str, str], list[Firing]] = {}
    for f in firings:
        by_meter.setdefault((f.site, f.meter), []).append(f)
    for fault in faults:
        detector = DETECTORS.get(fault.kind)
        if detector is None:
            continue
        mine = set(detectors[fault.kind])
        hits = [
            f
            for f in by_meter.get((fault.site, fault.meter), ())
            if f.rule in mine and fault.start_ms <= f.at_ms <= fault.end_ms + detector.grace_ms
        ]
        if hits:
            first = min(hits, key=lambda f: f.at_ms)
            fault.found = True
            fault.ttd_min = (first.at_ms - fault.start_ms) / MIN_MS
            fault.first_rule = first.rule
    explained = [_is_explained(f, faults) for f in firings]
    return RunScore(
        seed=seed,
        scenario=scenario,
        meter_days=meter_days,
        rules={r.name: r.type for r in rules},
        detectors=detectors,
        faults=faults,
        firings=list(firings),
        explained=explained,
    )


def _is_explained(firing: Firing, faults: Sequence[FaultOutcome]) -> bool:
    for fault in faults:
        if (fault.site, fault.meter) != (firing.site, firing.meter):
            continue
        grace = _EXPLAIN_GRACE_MS.get(fault.kind, _DEFAULT_EXPLAIN_MS)
        if fault.start_ms <= firing.at_ms <= fault.end_ms + grace:
            return True
    return False


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (linear), NaN for no values."""
    return float(np.percentile(np.asarray(values, float), q)) if len(values) else float("nan")


@dataclass(frozen=True)
class KindRow:
    """One line of the table: a fault kind over every run."""

    kind: str
    handled_by: str
    faults: int
    found: int
    recall: float
    precision: float
    false_per_100md: float
    ttd_p50_min: float
    ttd_p95_min: float
    detail: str = ""


@dataclass(frozen=True)
class RuleRow:
    rule: str
    type: str
    firings: int
    unexplained: int
    false_per_100md: float


@dataclass(frozen=True)
class Summary:
    kinds: list[KindRow]
    rules: list[RuleRow]
    meter_days: float
    seeds: list[int]
    firings: int
    unexplained: int
    latency_p50_s: float
    latency_p99_s: float

    @property
    def false_per_100md(self) -> float:
        return 100.0 * self.unexplained / self.meter_days if self.meter_days else float("nan")


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def _kind_row(kind: str, runs: Sequence[RunScore], meter_days: float) -> KindRow:
    outcomes = [f for r in runs for f in r.faults if f.kind == kind]
    found = [f for f in outcomes if f.found]
    if kind in DETECTORS:
        names = sorted({n for r in runs for n in r.detectors.get(kind, ())})
        handled = ", ".join(names) if names else f"no rule ({DETECTORS[kind].what}) in this file"
        n_firings = sum(r.kind_firings(kind)[0] for r in runs)
        n_true = sum(r.kind_firings(kind)[1] for r in runs)
        ttd = [f.ttd_min for f in found if f.ttd_min is not None]
        return KindRow(
            kind,
            handled,
            len(outcomes),
            len(found),
            _ratio(len(found), len(outcomes)),
            _ratio(n_true, n_firings),
            100.0 * (n_firings - n_true) / meter_days if meter_days else float("nan"),
            percentile(ttd, 50),
            percentile(ttd, 95),
        )
    reasons: Counter[str] = Counter()
    for f in outcomes:
        reasons.update(f.reasons)
    details = list(dict.fromkeys(f.detail for f in outcomes if f.detail))
    detail = details[0] if details else ""
    if len(details) > 1:
        detail += f" (and {len(details) - 1} more: faults.csv)"
    return KindRow(
        kind,
        HANDLED_BY_INGEST.get(kind, "nothing"),
        len(outcomes),
        len(found),
        _ratio(len(found), len(outcomes)),
        float("nan"),
        float("nan"),
        float("nan"),
        float("nan"),
        detail,
    )


def summarise(runs: Sequence[RunScore]) -> Summary:
    """Aggregate runs (seeds) into the table: every kind with faults or detectors, then
    every rule of the file with its firings and false alarms."""
    meter_days = sum(r.meter_days for r in runs)
    present = {f.kind for r in runs for f in r.faults}
    order = [*DETECTORS, *HANDLED_BY_INGEST]
    kinds = [k for k in order if k in present] + sorted(present - set(order))
    rule_names: dict[str, str] = {}
    for r in runs:
        rule_names.update(r.rules)
    rules = []
    for name, rtype in rule_names.items():
        n = sum(f.rule == name for r in runs for f in r.firings)
        false = sum(
            f.rule == name and not e
            for r in runs
            for f, e in zip(r.firings, r.explained, strict=True)
        )
        rules.append(
            RuleRow(name, rtype, n, false, 100.0 * false / meter_days if meter_days else 0)
        )
    latencies = [f.latency_s for r in runs for f in r.firings if f.latency_s is not None]
    return Summary(
        kinds=[_kind_row(k, runs, meter_days) for k in kinds],
        rules=rules,
        meter_days=meter_days,
        seeds=[r.seed for r in runs],
        firings=sum(len(r.firings) for r in runs),
        unexplained=sum(not e for r in runs for e in r.explained),
        latency_p50_s=percentile(latencies, 50),
        latency_p99_s=percentile(latencies, 99),
    )
