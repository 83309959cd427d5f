"""Which worker owns a site: a stable hash of the site id, the same in every process.

Ingest and rules workers started with `--partition k/n` each take the sites whose owner is
`k`, so a meter's readings are stored by one ingest worker and its rule state lives on one
rules worker. The hash is rendezvous (highest random weight) hashing over BLAKE2b: it never
depends on Python's per-process `hash()` salt, on the order of the cluster file, or on which
other sites exist, and growing from `n` to `n + 1` workers moves only about `1/(n+1)` of the
sites (to the new worker) instead of nearly all of them as `hash % n` would.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Partition", "owner_of", "parse_partition", "sites_of_partition"]

_SPEC = re.compile(r"^\s*(\d{1,4})\s*/\s*(\d{1,4})\s*$")


@dataclass(frozen=True)
class Partition:
    """Worker `index` of `count` (0-based): `Partition(1, 3)` is written `1/3`."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(
                f"partition {self.index}/{self.count}: need 0 <= k < n (workers are 0..n-1)"
            )

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def suffix(self) -> str:
        """For client ids and file names: `p1of3` (no `/`)."""
        return f"p{self.index}of{self.count}"

    def owns(self, site: str) -> bool:
        return owner_of(site, self.count) == self.index

    def select(self, sites: Iterable[str]) -> list[str]:
        return sites_of_partition(sites, self)


def parse_partition(text: str) -> Partition:
    """`"k/n"` → `Partition(k, n)`; a clear `ValueError` naming the text otherwise."""
    match = _SPEC.match(text)
    if match is None:
        raise ValueError(f"partition {text!r}: write it as k/n, e.g. 0/3 (worker k of n)")
    return Partition(int(match.group(1)), int(match.group(2)))


def _weight(site: str, worker: int) -> int:
    digest = hashlib.blake2b(f"{worker}\x00{site}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner_of(site: str, count: int) -> int:
    """The worker (0..count-1) that owns `site` among `count` workers."""
    if count < 1:
        raise ValueError("owner_of: need at least one worker")
    return max(range(count), key=lambda worker: _weight(site, worker))


def sites_of_partition(sites: Iterable[str], partition: Partition) -> list[str]:
    """The sites `partition` owns, in the order given."""
    return [site for site in sites if owner_of(site, partition.count) == partition.index]
