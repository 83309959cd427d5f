"""Scenario files: which faults to inject, where and when, resolved into `Fault`s.

A scenario is YAML (see `firmware-sim/scenarios/`):

    name: bad-winter-week
    start: 2026-01-12T00:00:00+01:00    # default --from (backfill); optional
    duration: 7d                        # default length; optional
    faults:
      - kind: leak                      # one of FAULT_KINDS
        match: {category: town_hall}    # or site: …, meter: …  (both optional)
        count: 1                        # how many matching meters (picked by the seed); or all
        at: 1d22h                       # offset from the run's start, or an ISO time
        duration: 2d
        params: {rate_lpm: 4.0}

Targets are picked among the meters that report the quantity the fault needs, so
`count` meters of the right kind are hit, deterministically for a seed. Every resolved
fault becomes one ground-truth record (`Fault.record()`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ecocluster.core.durations import Duration

from .faults import DEFAULT_QUANTITY, FAULT_KINDS, METER_LEVEL_KINDS, Fault, effective_params
from .noise import stream_key
from .plan import SimPlan

__all__ = ["FaultSpec", "Scenario", "ScenarioError", "load_scenario", "resolve_faults"]

FaultKind = Literal[FAULT_KINDS]  # type: ignore[valid-type]


class ScenarioError(ValueError):
    """A scenario file that cannot be read or names nothing in the cluster."""


class FaultSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    site: str | None = None
    meter: str | None = None
    match: dict[str, str] = Field(default_factory=dict)
    quantity: str | None = None
    count: int | Literal["all"] = 1
    at: Duration | datetime = Field(default=timedelta(0))
    duration: Duration = Field(default=timedelta(hours=1))
    params: dict[str, Any] = Field(default_factory=dict)


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    start: datetime | None = None
    duration: Duration | None = None
    faults: list[FaultSpec] = Field(default_factory=list)


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario file; a name without a path finds a shipped scenario
    (`quiet-week`, `bad-winter-week`, `stress-mix`)."""
    file = Path(path)
    if not file.exists() and not file.suffix:
        file = Path(__file__).parent / "scenarios" / f"{path}.yaml"
    try:
        raw = yaml.safe_load(file.read_text())
        return Scenario.model_validate(raw)
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read scenario: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ScenarioError(f"{path}: {where}: {first['msg']}") from None


def _candidates(plan: SimPlan, spec: FaultSpec, quantity: str | None) -> list[int]:
    labels_ok = []
    for m in plan.meters:
        labels = {"org": m.org, "site": m.site, "meter": m.meter, "category": m.category}
        if spec.site and m.site != spec.site:
            continue
        if spec.meter and m.meter != spec.meter:
            continue
        if any(labels.get(k) != v for k, v in spec.match.items()):
            continue
        if quantity is not None and quantity not in m.quantities:
            continue
        labels_ok.append(m.index)
    return labels_ok


def _quantity(plan: SimPlan, spec: FaultSpec, meter_idx: int) -> str | None:
    if spec.quantity:
        return spec.quantity
    default = DEFAULT_QUANTITY.get(spec.kind)
    if default is None:
        return None
    quantities = plan.meters[meter_idx].quantities
    for q in default:
        if q in quantities:
            return q
    return None


def resolve_faults(scenario: Scenario, plan: SimPlan, start_ms: int) -> list[Fault]:
    """Concrete faults (meter, quantity, start, end) for a run starting at `start_ms`."""
    faults: list[Fault] = []
    for n, spec in enumerate(scenario.faults):
        wanted = spec.quantity
        pool: list[int] = []
        defaults: list[str | None] = [*DEFAULT_QUANTITY.get(spec.kind, [])] or [None]
        candidates: list[str | None] = [wanted] if wanted else defaults
        for q in candidates:
            pool = _candidates(plan, spec, q)
            if pool:
                break
        if not pool:
            raise ScenarioError(
                f"scenario {scenario.name!r} fault #{n + 1} ({spec.kind}): no simulated meter "
                "matches its site/meter/match and reports the quantity it needs"
            )
        rng = np.random.default_rng(stream_key(plan.seed, scenario.name, n) % 2**63)
        if spec.count == "all" or spec.count >= len(pool):
            chosen = pool
        else:
            chosen = sorted(rng.choice(pool, size=spec.count, replace=False).tolist())
        if isinstance(spec.at, datetime):
            begin = int(spec.at.timestamp() * 1000)
        else:
            begin = start_ms + int(spec.at.total_seconds() * 1000)
        end = begin + int(spec.duration.total_seconds() * 1000)
        for meter_idx in chosen:
            m = plan.meters[meter_idx]
            quantity = None if spec.kind in METER_LEVEL_KINDS else _quantity(plan, spec, meter_idx)
            faults.append(
                Fault(
                    id=f"{scenario.name}-{n + 1:02d}-{len(faults) + 1:03d}",
                    kind=spec.kind,
                    meter_idx=meter_idx,
                    site=m.site,
                    meter=m.meter,
                    quantity=quantity,
                    start_ms=begin,
                    end_ms=begin if spec.kind == "counter_reset" else end,
                    params=effective_params(spec.kind, spec.params, m),
                    scenario=scenario.name,
                )
            )
    return faults
