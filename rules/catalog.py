"""The rule types, and turning the cluster file's `rules:` into typed, compiled rules.

Errors name the file, line and field (`cluster.yml:42 rules[3].above: …`) through the
registry's recorded locations, and every bad rule is reported, not only the first.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter, ValidationError

from ecocluster.core.registry import Cluster
from ecocluster.core.yamlsource import ConfigError, ConfigIssue
from ecocluster.rules.config import RuleBase
from ecocluster.rules.kernel import CompileContext, Kernel, RuleCompileError
from ecocluster.rules.types.absence import AbsenceKernel, AbsenceRule
from ecocluster.rules.types.anomaly import AnomalyKernel, AnomalyRule
from ecocluster.rules.types.burst import BurstKernel, BurstRule
from ecocluster.rules.types.compliance import ComplianceKernel, ComplianceRule
from ecocluster.rules.types.night_flow import NightFlowKernel, NightFlowRule
from ecocluster.rules.types.rate import RateKernel, RateRule
from ecocluster.rules.types.stuck import StuckKernel, StuckRule
from ecocluster.rules.types.threshold import ThresholdKernel, ThresholdRule

__all__ = ["KERNELS", "AnyRule", "compile_rules", "parse_rule", "parse_rules"]

AnyRule = Annotated[
    Union[  # noqa: UP007 - a discriminated union reads best spelled out
        ThresholdRule,
        RateRule,
        AbsenceRule,
        StuckRule,
        NightFlowRule,
        BurstRule,
        AnomalyRule,
        ComplianceRule,
    ],
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyRule)

KERNELS: dict[type[RuleBase], type[Kernel[Any]]] = {
    ThresholdRule: ThresholdKernel,
    RateRule: RateKernel,
    AbsenceRule: AbsenceKernel,
    StuckRule: StuckKernel,
    NightFlowRule: NightFlowKernel,
    BurstRule: BurstKernel,
    AnomalyRule: AnomalyKernel,
    ComplianceRule: ComplianceKernel,
}


def parse_rule(raw: dict[str, Any]) -> RuleBase:
    """Validate one rule mapping (raises pydantic's `ValidationError`)."""
    rule: RuleBase = _ADAPTER.validate_python(raw)
    return rule


def parse_rules(cluster: Cluster) -> list[RuleBase]:
    """Every rule of the cluster as its typed model; `ConfigError` lists all problems."""
    issues: list[ConfigIssue] = []
    out: list[RuleBase] = []
    for i, spec in enumerate(cluster.rules):
        try:
            out.append(parse_rule(_raw(spec)))
        except ValidationError as exc:
            seen: set[tuple[str | int, ...]] = set()
            for err in exc.errors():
                loc = _field_path(err["loc"], spec.type)
                if loc in seen:
                    continue  # one message per field, not one per union member
                seen.add(loc)
                path = ("rules", i, *loc)
                issues.append(ConfigIssue(cluster.locate(path), path, _message(err, loc)))
    if issues:
        raise ConfigError(issues)
    return out


def compile_rules(ctx: CompileContext) -> list[Kernel[Any]]:
    """Parse and compile every rule of `ctx.cluster`; one `ConfigError` lists all problems
    (bad fields, and well-formed rules that cannot run, e.g. a window past the horizon)."""
    issues: list[ConfigIssue] = []
    specs: list[RuleBase | None] = []
    try:
        specs = list(parse_rules(ctx.cluster))
    except ConfigError as exc:
        issues.extend(exc.issues)
        specs = [_try_parse(spec) for spec in ctx.cluster.rules]
    kernels: list[Kernel[Any]] = []
    for index, spec in enumerate(specs):
        if spec is None:
            continue
        try:
            kernels.append(KERNELS[type(spec)](spec, ctx))
        except RuleCompileError as exc:
            path = ("rules", index, exc.field)
            issues.append(ConfigIssue(ctx.cluster.locate(path), path, str(exc)))
    if issues:
        raise ConfigError(issues)
    return kernels


def _raw(spec: Any) -> dict[str, Any]:
    raw: dict[str, Any] = spec.model_dump(by_alias=True, exclude_unset=True)
    raw.update(spec.model_extra or {})
    return raw


def _try_parse(spec: Any) -> RuleBase | None:
    try:
        return parse_rule(_raw(spec))
    except ValidationError:
        return None


_UNION_MEMBERS = ("float", "int", "str", "bool", "literal[", "dict[", "list[", "function-")
_UNION_HINTS = {
    "above": "a number, 'contracted', or severities to numbers ({warning: 50, critical: 80})",
    "below": "a number, 'contracted', or severities to numbers ({warning: 5, critical: 1})",
}


def _field_path(loc: tuple[Any, ...], rule_type: str) -> tuple[str | int, ...]:
    """The field path without the union's tag and member names (`above.float` → `above`)."""
    out: list[str | int] = []
    for i, part in enumerate(loc):
        if i == 0 and part == rule_type:
            continue
        if isinstance(part, str) and part.startswith(_UNION_MEMBERS):
            break
        out.append(part)
    return tuple(out)


def _message(err: Any, loc: tuple[str | int, ...]) -> str:
    kind = err["type"]
    hint = _UNION_HINTS.get(str(loc[0])) if len(loc) == 1 else None
    if hint is not None and kind != "value_error":
        return f"must be {hint} (got {err.get('input')!r})"
    if kind == "extra_forbidden":
        return "unknown field for this rule type"
    if kind == "missing":
        return "missing required field"
    msg = str(err["msg"]).removeprefix("Value error, ")
    value = err.get("input")
    if value is not None and not isinstance(value, dict | list) and kind != "value_error":
        msg += f" (got {value!r})"
    return msg
