"""Data flows one way: ingest → rules → alerts, with api reading all; the base package
`ecocluster` imports no stage at module level (the CLI loads stage commands lazily)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["ecocluster", "ingest", "rules", "alerts", "api"]
PACKAGE_DIRS = {name: ROOT / name for name in ORDER} | {"firmware_sim": ROOT / "firmware-sim"}
#: What each package may import, besides itself and third-party code.
ALLOWED = {
    "ecocluster": set(),
    "ingest": {"ecocluster"},
    "rules": {"ecocluster", "ingest"},
    "alerts": {"ecocluster", "ingest", "rules"},
    "api": {"ecocluster", "ingest", "rules", "alerts"},
    "firmware_sim": {"ecocluster"},
}
#: Composition roots: they wire stages together and may import any of them.
COMPOSERS = {"cli.py", "node.py", "node_cli.py", "demo.py", "demo_cli.py"}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", list(PACKAGE_DIRS))
def test_no_stage_imports_a_later_one(package: str) -> None:
    ours = set(PACKAGE_DIRS)
    bad = []
    for path in PACKAGE_DIRS[package].rglob("*.py"):
        if package == "ecocluster" and path.name in COMPOSERS:
            continue
        for root in imported_roots(path) & ours - {package} - ALLOWED[package]:
            bad.append(f"{path.relative_to(ROOT)} imports {root}")
    assert not bad, bad
