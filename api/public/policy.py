"""What may be shown without a token: one place that decides, used by every public answer.

- An **organisation** is shown by name only if it is a public body (`kind: public`).
- A **site** (its name, position, own figures) is public if its organisation is a public
  body or the cluster file marks the site `public: true`.
- A **meter**'s individual figures are public only if the cluster file marks the meter or
  its site `public: true` (a public body's meters are shown summed per organisation).
- An **air station** is a public site of category `air_station` with at least one air
  pollutant meter.
- An **alert** is public if its rule is marked `public: true` in the cluster file (off by
  default). Its place is named only if its site is public; otherwise the territory's name.

Everything else a private organisation has (sites, meters, contacts, internal alert
details) appears only inside territory-wide sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from ecocluster.core.cluster import Site
from ecocluster.core.registry import Cluster
from ecocluster.core.types import AIR_QUANTITIES

__all__ = ["PublicPolicy"]


@dataclass(frozen=True)
class PublicPolicy:
    cluster: Cluster

    @cached_property
    def public_orgs(self) -> frozenset[str]:
        return frozenset(o.id for o in self.cluster.organisations if o.kind == "public")

    @cached_property
    def public_sites(self) -> frozenset[str]:
        return frozenset(
            s.id
            for s in self.cluster.sites
            if s.org in self.public_orgs or getattr(s, "public", False)
        )

    @cached_property
    def public_meters(self) -> frozenset[tuple[str, str]]:
        """(site, meter) whose own figures may be shown."""
        marked = {s.id for s in self.cluster.sites if getattr(s, "public", False)}
        return frozenset(
            (m.site, m.id)
            for m in self.cluster.meters
            if m.site in marked or getattr(m, "public", False)
        )

    @cached_property
    def public_rules(self) -> frozenset[str]:
        return frozenset(r.name for r in self.cluster.rules if getattr(r, "public", False))

    @cached_property
    def air_stations(self) -> tuple[Site, ...]:
        """Public outdoor air-quality stations, in file order."""
        out = []
        for site in self.cluster.sites:
            if site.category != "air_station" or site.id not in self.public_sites:
                continue
            measured = {q for m in self.cluster.meters_of(site.id) for q in m.quantities}
            if measured & AIR_QUANTITIES:
                out.append(site)
        return tuple(out)

    def place(self, site_id: str | None) -> str:
        """The site's name if it is public, else the territory's."""
        site = self.cluster.site_by_id.get(site_id or "")
        if site is not None and site.id in self.public_sites:
            return site.name
        return self.cluster.territory.name
