"""Every package of the tree is listed in pyproject.toml, so `pip install .` ships it all
(including `firmware-sim/`, installed as `firmware_sim`)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROOTS = {
    "ecocluster": "ecocluster",
    "ingest": "ingest",
    "rules": "rules",
    "alerts": "alerts",
    "api": "api",
    "firmware-sim": "firmware_sim",
}


def test_every_package_is_listed() -> None:
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = set()
    for folder, name in ROOTS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *rel)))
    assert found == listed, f"missing: {found - listed}, stale: {listed - found}"
