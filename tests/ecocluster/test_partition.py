"""The site → worker hash: stable across processes, balanced, minimal movement on growth."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from ecocluster.core.partition import Partition, owner_of, parse_partition, sites_of_partition

SITES = [f"site-{i:04d}" for i in range(3000)]


def test_every_site_has_exactly_one_owner() -> None:
    parts = [sites_of_partition(SITES, Partition(k, 3)) for k in range(3)]
    assert sorted(s for part in parts for s in part) == sorted(SITES)
    assert all(set(a).isdisjoint(b) for i, a in enumerate(parts) for b in parts[i + 1 :])


def test_balanced_within_ten_percent() -> None:
    counts = Counter(owner_of(s, 4) for s in SITES)
    assert set(counts) == {0, 1, 2, 3}
    assert max(counts.values()) < 1.1 * len(SITES) / 4


def test_growing_moves_only_sites_to_the_new_worker() -> None:
    before = {s: owner_of(s, 3) for s in SITES}
    after = {s: owner_of(s, 4) for s in SITES}
    moved = [s for s in SITES if before[s] != after[s]]
    assert all(after[s] == 3 for s in moved)
    assert len(moved) < 0.32 * len(SITES)


def test_same_answer_in_another_process() -> None:
    """Python's `hash()` is salted per process; ours must not be."""
    code = (
        "from ecocluster.core.partition import owner_of;"
        "print(','.join(str(owner_of(f'site-{i:04d}', 5)) for i in range(200)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ",".join(str(owner_of(s, 5)) for s in SITES[:200])


@pytest.mark.parametrize("text", ["3/3", "-1/2", "1/0", "a/b", "1", "1/2/3", ""])
def test_bad_specs_are_refused_with_the_text(text: str) -> None:
    with pytest.raises(ValueError, match="partition"):
        parse_partition(text)


def test_parse_and_print() -> None:
    p = parse_partition(" 1 / 3 ")
    assert (p.index, p.count, str(p), p.suffix) == (1, 3, "1/3", "p1of3")
    assert p.owns(next(s for s in SITES if owner_of(s, 3) == 1))
