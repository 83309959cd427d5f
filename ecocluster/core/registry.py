"""Load the cluster file into a validated, indexed `Cluster`.

Loading never stops at the first problem: every item of every section is validated on its
own, then cross-references are checked over the items that passed, and all problems are
raised together as one `ConfigError`, each naming file, line and field path.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ecocluster.core.alerting import ROLES, parse_recipient
from ecocluster.core.cluster import (
    LIST_SECTIONS,
    TOP_LEVEL_KEYS,
    Contact,
    Escalation,
    InhibitRule,
    Meter,
    Organisation,
    Route,
    RuleSpec,
    Schedule,
    Site,
    Territory,
    TimeInterval,
)
from ecocluster.core.settings import IncludePolicy
from ecocluster.core.types import ID_PATTERN, QUANTITIES, SITE_CATEGORIES, SeriesKey
from ecocluster.core.yamlsource import (
    ConfigError,
    ConfigIssue,
    LocatedDocument,
    Location,
    Path_,
    load_yaml,
    locate,
)

__all__ = ["Cluster", "ConfigError", "ConfigIssue", "SeriesKey", "load_cluster"]


@dataclass(frozen=True)
class Cluster:
    """The validated territory with the lookups later stages need (all O(1) or precomputed)."""

    territory: Territory
    organisations: tuple[Organisation, ...]
    sites: tuple[Site, ...]
    meters: tuple[Meter, ...]
    contacts: tuple[Contact, ...]
    rules: tuple[RuleSpec, ...]
    routes: tuple[Route, ...]
    escalations: tuple[Escalation, ...]
    schedules: tuple[Schedule, ...] = ()
    time_intervals: tuple[TimeInterval, ...] = ()
    inhibit_rules: tuple[InhibitRule, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None
    _locations: dict[Path_, Location] = field(default_factory=dict, repr=False)

    # -- lookups ---------------------------------------------------------------------------
    @cached_property
    def org_by_id(self) -> dict[str, Organisation]:
        return {o.id: o for o in self.organisations}

    @cached_property
    def site_by_id(self) -> dict[str, Site]:
        return {s.id: s for s in self.sites}

    @cached_property
    def meter_by_key(self) -> dict[tuple[str, str], Meter]:
        return {(m.site, m.id): m for m in self.meters}

    @cached_property
    def contact_by_id(self) -> dict[str, Contact]:
        return {c.id: c for c in self.contacts}

    @cached_property
    def escalation_by_name(self) -> dict[str, Escalation]:
        return {e.name: e for e in self.escalations}

    @cached_property
    def schedule_by_name(self) -> dict[str, Schedule]:
        return {s.name: s for s in self.schedules}

    @cached_property
    def time_interval_by_name(self) -> dict[str, TimeInterval]:
        return {t.name: t for t in self.time_intervals}

    @cached_property
    def _sites_of_org(self) -> dict[str, tuple[Site, ...]]:
        grouped: dict[str, list[Site]] = defaultdict(list)
        for site in self.sites:
            grouped[site.org].append(site)
        return {org: tuple(sites) for org, sites in grouped.items()}

    @cached_property
    def _meters_of_site(self) -> dict[str, tuple[Meter, ...]]:
        grouped: dict[str, list[Meter]] = defaultdict(list)
        for meter in self.meters:
            grouped[meter.site].append(meter)
        return {site: tuple(meters) for site, meters in grouped.items()}

    def meter(self, site: str, meter: str) -> Meter | None:
        return self.meter_by_key.get((site, meter))

    def sites_of(self, org: str) -> tuple[Site, ...]:
        return self._sites_of_org.get(org, ())

    def meters_of(self, site: str) -> tuple[Meter, ...]:
        return self._meters_of_site.get(site, ())

    def org_of_site(self, site: str) -> str | None:
        found = self.site_by_id.get(site)
        return found.org if found else None

    @cached_property
    def series(self) -> tuple[SeriesKey, ...]:
        """Every declared series, in file order: the row order of the rule engine's arrays."""
        return tuple(
            SeriesKey(self.site_by_id[m.site].org, m.site, m.id, q)
            for m in self.meters
            for q in m.quantities
        )

    @cached_property
    def series_index(self) -> dict[tuple[str, str, str], int]:
        """(site, meter, quantity) → row in `series`."""
        return {(k.site, k.meter, k.quantity): i for i, k in enumerate(self.series)}

    def labels_of(self, site: str, meter: str | None = None) -> dict[str, str]:
        """The labels rules and routes match on, for a site or one of its meters."""
        s = self.site_by_id[site]
        labels = {"org": s.org, "site": s.id, "category": s.category}
        if meter is not None:
            labels["meter"] = meter
        return labels

    def locate(self, path: Path_) -> Location | None:
        """Where `path` (e.g. `("rules", 2, "above")`) was written, for later stages' errors."""
        return locate(self._locations, path)

    def summary(self) -> str:
        return (
            f"{len(self.organisations)} organisations, {len(self.sites)} sites, "
            f"{len(self.meters)} meters ({len(self.series)} series), "
            f"{len(self.contacts)} contacts, {len(self.rules)} rules, "
            f"{len(self.routes)} routes, {len(self.escalations)} escalations"
        )


# -- loading -------------------------------------------------------------------------------
def load_cluster(path: str | Path, *, includes: IncludePolicy | None = None) -> Cluster:
    """Load and validate a cluster file (following `include:`); raise `ConfigError` if bad.

    `includes` says where `include:` may read (default: from the environment, which by
    default confines includes to the cluster file's own directory)."""
    merged = _merge_documents(Path(path), includes or _include_policy())
    issues = list(merged.issues)
    sections = _validate_sections(merged, issues)
    territory = _validate_territory(merged, issues)
    _check_references(sections, merged, issues)
    if issues or territory is None:
        raise ConfigError(issues)
    return Cluster(
        territory=territory,
        settings=dict(merged.data.get("settings") or {}),
        source=Path(path),
        _locations=merged.locations,
        **{name: tuple(items) for name, items in sections.items()},
    )


def _include_policy() -> IncludePolicy:
    try:
        return IncludePolicy()
    except ValidationError as exc:
        err = exc.errors()[0]
        name = f"ECOCLUSTER_CONFIG_{str(err['loc'][0]).upper()}"
        raise ConfigError([ConfigIssue(Location("environment", 0), (name,), err["msg"])]) from None


def _merge_documents(root: Path, policy: IncludePolicy) -> LocatedDocument:
    """Concatenate the list sections of the root file and its includes, remapping locations."""
    merged = LocatedDocument({name: [] for name in LIST_SECTIONS})
    _merge_into(merged, root, _Includes.for_root(root, policy))
    return merged


def _merge_into(merged: LocatedDocument, path: Path, includes: _Includes) -> None:
    includes.enter(path)
    merged.locations.setdefault((), Location(str(path), 1))  # the root file, for its errors
    doc = load_yaml(path)
    if isinstance(doc.data, dict) and not any(key in TOP_LEVEL_KEYS for key in doc.data):
        # Not a cluster file (say, /etc/passwd through a symlink): name none of its content.
        where = Location(str(path), 0)
        merged.issues.append(ConfigIssue(where, (), "not a cluster file (no known section)"))
    elif doc.data is None:
        merged.issues.extend(doc.issues)
        if not doc.issues:
            merged.issues.append(ConfigIssue(Location(str(path), 1), (), "the file is empty"))
    elif not isinstance(doc.data, dict):
        merged.issues.append(
            ConfigIssue(doc.locate(()), (), "the cluster file must be a mapping of sections")
        )
    else:
        merged.issues.extend(doc.issues)
        for key, value in doc.data.items():
            _merge_section(merged, doc, path, key, value, includes)
    includes.leave()


@dataclass
class _Includes:
    """Where `include:` may read, and which files are being or have been merged: a file
    reached twice (a diamond) is merged once; one that includes itself is a cycle."""

    allowed: tuple[Path, ...]
    anywhere: bool
    stack: list[Path] = field(default_factory=list)
    done: set[Path] = field(default_factory=set)

    @classmethod
    def for_root(cls, root: Path, policy: IncludePolicy) -> _Includes:
        # The directory the file was named in (its includes are relative to it), even when
        # the file itself is a symlink into another directory.
        dirs = (root.parent.resolve(), *(d.resolve() for d in policy.include_dirs))
        return cls(dirs, policy.include_anywhere)

    def enter(self, path: Path) -> None:
        resolved = path.resolve()
        self.stack.append(resolved)
        self.done.add(resolved)

    def leave(self) -> None:
        self.stack.pop()

    def refusal(self, name: str, target: Path) -> str | None:
        """Why `name` (as written; `target` resolved) may not be included, or None."""
        if not self.anywhere:
            if Path(name).is_absolute() and not _within(target, self.allowed[1:]):
                return (
                    f"absolute include path {name!r} is not allowed (allow a directory with "
                    "ECOCLUSTER_CONFIG_INCLUDE_DIRS)"
                )
            if not _within(target, self.allowed):
                return (
                    f"include {name!r} is outside the cluster file's directory (allow a "
                    "directory with ECOCLUSTER_CONFIG_INCLUDE_DIRS)"
                )
        if _within(target, _SYSTEM_DIRS):
            return f"include {name!r} names a system file, not a cluster file"
        if not target.is_file():
            return f"included file not found: {name}"
        if target in self.stack:
            chain = [*self.stack[self.stack.index(target) :], target]
            return "include cycle: " + " → ".join(p.name for p in chain)
        return None


_SYSTEM_DIRS = (Path("/proc"), Path("/sys"), Path("/dev"))


def _within(target: Path, dirs: Iterable[Path]) -> bool:
    return any(target.is_relative_to(d) for d in dirs)


def _merge_section(
    merged: LocatedDocument,
    doc: LocatedDocument,
    path: Path,
    key: Any,
    value: Any,
    includes: _Includes,
) -> None:
    here = doc.locate((key,))
    if key not in TOP_LEVEL_KEYS:
        known = ", ".join(sorted(TOP_LEVEL_KEYS))
        merged.issues.append(ConfigIssue(here, (key,), f"unknown section (known: {known})"))
        return
    if key == "include":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            merged.issues.append(ConfigIssue(here, (key,), "must be a list of file paths"))
            return
        for i, name in enumerate(value):
            target = (path.parent / name).resolve()
            refusal = includes.refusal(name, target) if name.strip() else "empty include path"
            if refusal is not None:
                merged.issues.append(ConfigIssue(doc.locate((key, i)), (key, i), refusal))
            elif target not in includes.done:  # a diamond: already merged once
                _merge_into(merged, target, includes)
        return
    if key in ("territory", "settings"):
        if key in merged.data:
            first = merged.locations[(key,)]
            merged.issues.append(
                ConfigIssue(here, (key,), f"given twice (first in {first.file}:{first.line})")
            )
            return
        merged.data[key] = value
        _copy_locations(merged, doc, (key,), (key,))
        return
    if value is None:
        return
    if not isinstance(value, list):
        merged.issues.append(ConfigIssue(here, (key,), "must be a list"))
        return
    items = merged.data[key]
    for i, item in enumerate(value):
        _copy_locations(merged, doc, (key, i), (key, len(items)))
        items.append(item)


def _copy_locations(merged: LocatedDocument, doc: LocatedDocument, src: Path_, dst: Path_) -> None:
    n = len(src)
    for p, loc in doc.locations.items():
        if p[:n] == src:
            merged.locations[dst + p[n:]] = loc


def _validate_sections(merged: LocatedDocument, issues: list[ConfigIssue]) -> dict[str, list[Any]]:
    sections: dict[str, list[Any]] = {}
    for name, model in LIST_SECTIONS.items():
        valid = []
        for i, raw in enumerate(merged.data[name]):
            item = _validate_item(model, raw, (name, i), merged, issues)
            if item is not None:
                valid.append((i, item))
        sections[name] = valid
    return sections


def _validate_territory(merged: LocatedDocument, issues: list[ConfigIssue]) -> Territory | None:
    if "territory" not in merged.data:
        if any(issue.path[:1] in ((), ("include",)) for issue in merged.issues):
            return None  # a file did not parse or was not included: its territory may be there
        issues.append(
            ConfigIssue(merged.locate(()), ("territory",), "missing required section 'territory'")
        )
        return None
    result = _validate_item(Territory, merged.data["territory"], ("territory",), merged, issues)
    return result if isinstance(result, Territory) else None


def _validate_item(
    model: type[BaseModel],
    raw: Any,
    path: Path_,
    merged: LocatedDocument,
    issues: list[ConfigIssue],
) -> BaseModel | None:
    if not isinstance(raw, dict):
        issues.append(
            ConfigIssue(merged.locate(path), path, f"must be a mapping, got {type(raw).__name__}")
        )
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            full = (*path, *err["loc"])
            issues.append(ConfigIssue(merged.locate(full), full, _message(err)))
        return None


def _message(err: Any) -> str:
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "missing required field"
    if kind == "string_pattern_mismatch":
        return f"invalid id {value!r}: ids match {ID_PATTERN} (no spaces, commas, '=' or quotes)"
    loc = err["loc"]
    if kind == "literal_error" and loc and loc[0] == "quantities":
        return f"unknown quantity {value!r} (known: {', '.join(QUANTITIES)})"
    if kind == "literal_error" and loc == ("category",):
        return f"unknown category {value!r} (known: {', '.join(SITE_CATEGORIES)})"
    msg = str(err["msg"])
    msg = msg.removeprefix("Value error, ")
    if value is not None and not isinstance(value, dict | list) and kind != "value_error":
        msg += f" (got {value!r})"
    return msg


# -- cross-references ---------------------------------------------------------------------
# Checked on the raw items, so that an item with an unrelated error still has its references
# checked and still counts as defined: one typo must not hide or cause other errors.
def _check_references(
    sections: dict[str, list[Any]], merged: LocatedDocument, issues: list[ConfigIssue]
) -> None:
    raw: dict[str, list[dict[str, Any]]] = {
        name: [i if isinstance(i, dict) else {} for i in merged.data[name]]
        for name in LIST_SECTIONS
    }

    def report(path: Path_, message: str) -> None:
        issues.append(ConfigIssue(merged.locate(path), path, message))

    def unique(section: str, fields: tuple[str, ...], what: str) -> None:
        first_seen: dict[Any, int] = {}
        for i, item in enumerate(raw[section]):
            key = tuple(_text(item.get(f)) for f in fields)
            if None in key:
                continue
            if key in first_seen:
                line = merged.locate((section, first_seen[key]))
                where = f" (first at line {line.line})" if line else ""
                shown = "/".join(repr(k) for k in key)
                report((section, i, fields[-1]), f"duplicate {what} {shown}{where}")
            else:
                first_seen[key] = i

    unique("organisations", ("id",), "organisation id")
    unique("sites", ("id",), "site id")
    unique("meters", ("site", "id"), "meter id on this site")
    unique("contacts", ("id",), "contact id")
    unique("rules", ("name",), "rule name")
    unique("escalations", ("name",), "escalation name")
    unique("schedules", ("name",), "schedule name")
    unique("time_intervals", ("name",), "time interval name")

    def ids(section: str, key: str = "id") -> set[str]:
        return {v for item in raw[section] if (v := _text(item.get(key))) is not None}

    pools = {
        "organisation": ids("organisations"),
        "site": ids("sites"),
        "meter": ids("meters"),
        "contact": ids("contacts"),
        "escalation": ids("escalations", "name"),
        "schedule": ids("schedules", "name"),
        "time interval": ids("time_intervals", "name"),
        "category": set(SITE_CATEGORIES),
        "quantity": set(QUANTITIES),
    }

    def known(path: Path_, value: Any, what: str) -> None:
        text = _text(value)
        if text is not None and text not in pools[what]:
            report(path, f"unknown {what} {text!r} (known: {_preview(pools[what])})")

    def known_list(path: Path_, values: Any, what: str) -> None:
        for j, value in enumerate(values if isinstance(values, list) else []):
            known((*path, j), value, what)

    def known_match(path: Path_, match: Any) -> None:
        if isinstance(match, dict):
            for label, what in _MATCH_POOLS.items():
                if label in match:
                    known((*path, label), match[label], what)

    for i, site in enumerate(raw["sites"]):
        known(("sites", i, "org"), site.get("org"), "organisation")
    for i, meter in enumerate(raw["meters"]):
        known(("meters", i, "site"), meter.get("site"), "site")
    for i, contact in enumerate(raw["contacts"]):
        known(("contacts", i, "org"), contact.get("org"), "organisation")

    def known_recipients(path: Path_, values: Any) -> None:
        for j, value in enumerate(values if isinstance(values, list) else []):
            message = _recipient_problem(value, pools["contact"], pools["schedule"])
            if message:
                report((*path, j), message)

    def check_route(path: Path_, route: Any) -> None:
        if not isinstance(route, dict):
            return
        known_recipients((*path, "notify"), route.get("notify"))
        known((*path, "escalate"), route.get("escalate"), "escalation")
        known_match((*path, "match"), route.get("match"))
        for key in ("mute_time_intervals", "active_time_intervals"):
            known_list((*path, key), route.get(key), "time interval")
        children = route.get("routes")
        for k, child in enumerate(children if isinstance(children, list) else []):
            check_route((*path, "routes", k), child)

    for i, route in enumerate(raw["routes"]):
        check_route(("routes", i), route)
    for i, schedule in enumerate(raw["schedules"]):
        known_list(("schedules", i, "members"), schedule.get("members"), "contact")
        overrides = schedule.get("overrides")
        for k, override in enumerate(overrides if isinstance(overrides, list) else []):
            if isinstance(override, dict):
                where = ("schedules", i, "overrides", k, "contact")
                known(where, override.get("contact"), "contact")
    for i, esc in enumerate(raw["escalations"]):
        steps = esc.get("steps")
        for s, step in enumerate(steps if isinstance(steps, list) else []):
            if isinstance(step, dict):
                known_recipients(("escalations", i, "steps", s, "notify"), step.get("notify"))
    for i, rule in enumerate(raw["rules"]):
        known_match(("rules", i, "match"), rule.get("match"))

    for name in sections:
        sections[name] = [item for _, item in sections[name]]


_MATCH_POOLS = {
    "org": "organisation",
    "site": "site",
    "meter": "meter",
    "category": "category",
    "quantity": "quantity",
}


def _recipient_problem(value: Any, contacts: set[str], schedules: set[str]) -> str | None:
    """Why a `notify:` entry names nobody (or is ambiguous), or None when it is fine."""
    if not isinstance(value, str):
        return None
    try:
        kind, name = parse_recipient(value)
    except ValueError:
        return None  # the model reports the malformed entry
    pools = {"contact": contacts, "schedule": schedules, "role": set(ROLES)}
    if kind is not None:
        if name not in pools[kind]:
            return f"unknown {kind} {name!r} (known: {_preview(pools[kind])})"
        return None
    found = [k for k, pool in pools.items() if name in pool]
    if not found:
        return (
            f"unknown contact {name!r} (known: {_preview(contacts)}), "
            f"nor a schedule ({_preview(schedules)}) or a role"
        )
    if len(found) > 1:
        return f"{name!r} is both a {found[0]} and a {found[1]}: write {found[0]}:{name}"
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _preview(pool: Iterable[str], limit: int = 8) -> str:
    items: Sequence[str] = sorted(pool)
    if not items:
        return "none defined"
    shown = ", ".join(items[:limit])
    return shown + (f", … {len(items) - limit} more" if len(items) > limit else "")
