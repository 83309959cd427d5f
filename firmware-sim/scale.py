"""Synthetic copies of a territory's sites, for load tests with thousands of meters.

Copy k of site `s` is `s.k` (ids keep to the contract's pattern), with the same
organisation, category and meters; the copies' profiles differ because every noise stream
is keyed by the site id.
"""

from __future__ import annotations

import dataclasses

from ecocluster.core.registry import Cluster

__all__ = ["scale_cluster"]


def scale_cluster(cluster: Cluster, copies: int) -> Cluster:
    """The cluster with `copies - 1` extra copies of every site and its meters."""
    if copies < 1:
        raise ValueError(f"scale must be at least 1, got {copies}")
    sites = list(cluster.sites)
    meters = list(cluster.meters)
    for k in range(2, copies + 1):
        for site in cluster.sites:
            new_id = f"{site.id}.{k}"[-64:]
            sites.append(site.model_copy(update={"id": new_id, "name": f"{site.name} #{k}"}))
            meters.extend(
                m.model_copy(update={"site": new_id, "mqtt_username": None, "mqtt_password": None})
                for m in cluster.meters_of(site.id)
            )
    return dataclasses.replace(cluster, sites=tuple(sites), meters=tuple(meters))
