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

from ecocluster.core.cluster import (
    LIST_SECTIONS,
    TOP_LEVEL_KEYS,
    Contact,
    Escalation,
    Meter,
    Organisation,
    Route,
    RuleSpec,
    Site,
    Territory,
)
from ecocluster.core.types import ID_PATTERN, QUANTITIES, SITE_CATEGORIES, SeriesKey
from ecocluster.core.yamlsource import (
    ConfigError,
    ConfigIssue,
    LocatedDocument,
    Location,
    Path_,
    load_yaml,
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
        for end in range(len(path), -1, -1):
            loc = self._locations.get(tuple(path[:end]))
            if loc is not None:
                return loc
        return None

    def summary(self) -> str:
        return (
            f"{len(self.organisations)} organisations, {len(self.sites)} sites, "
            f"{len(self.meters)} meters ({len(self.series)} series), "
            f"{len(self.contacts)} contacts, {len(self.rules)} rules, "
            f"{len(self.routes)} routes, {len(self.escalations)} escalations"
        )


# -- loading -------------------------------------------------------------------------------
def load_cluster(path: str | Path) -> Cluster:
    """Load and validate a cluster file (following `include:`); raise `ConfigError` if bad."""
    merged = _merge_documents(Path(path))
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


def _merge_documents(root: Path) -> LocatedDocument:
    """Concatenate the list sections of the root file and its includes, remapping locations."""
    merged = LocatedDocument({name: [] for name in LIST_SECTIONS})
    _merge_into(merged, root, seen=set())
    return merged


def _merge_into(merged: LocatedDocument, path: Path, seen: set[Path]) -> None:
    resolved = path.resolve()
    if resolved in seen:
        merged.issues.append(ConfigIssue(Location(str(path), 1), (), "include cycle"))
        return
    seen.add(resolved)
    doc = load_yaml(path)
    merged.issues.extend(doc.issues)
    if doc.data is None:
        if not doc.issues:
            merged.issues.append(ConfigIssue(Location(str(path), 1), (), "the file is empty"))
        return
    if not isinstance(doc.data, dict):
        merged.issues.append(
            ConfigIssue(doc.locate(()), (), "the cluster file must be a mapping of sections")
        )
        return
    for key, value in doc.data.items():
        _merge_section(merged, doc, path, key, value, seen)


def _merge_section(
    merged: LocatedDocument,
    doc: LocatedDocument,
    path: Path,
    key: Any,
    value: Any,
    seen: set[Path],
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
            if not target.is_file():
                merged.issues.append(
                    ConfigIssue(doc.locate((key, i)), (key, i), f"included file not found: {name}")
                )
                continue
            _merge_into(merged, target, seen)
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
        if any(issue.path == () for issue in merged.issues):
            return None  # a file did not parse: its territory may well be there
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

    def ids(section: str, key: str = "id") -> set[str]:
        return {v for item in raw[section] if (v := _text(item.get(key))) is not None}

    pools = {
        "organisation": ids("organisations"),
        "site": ids("sites"),
        "meter": ids("meters"),
        "contact": ids("contacts"),
        "escalation": ids("escalations", "name"),
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
    for i, route in enumerate(raw["routes"]):
        known_list(("routes", i, "notify"), route.get("notify"), "contact")
        known(("routes", i, "escalate"), route.get("escalate"), "escalation")
        known_match(("routes", i, "match"), route.get("match"))
    for i, esc in enumerate(raw["escalations"]):
        steps = esc.get("steps")
        for s, step in enumerate(steps if isinstance(steps, list) else []):
            if isinstance(step, dict):
                known_list(("escalations", i, "steps", s, "notify"), step.get("notify"), "contact")
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


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _preview(pool: Iterable[str], limit: int = 8) -> str:
    items: Sequence[str] = sorted(pool)
    if not items:
        return "none defined"
    shown = ", ".join(items[:limit])
    return shown + (f", … {len(items) - limit} more" if len(items) > limit else "")
