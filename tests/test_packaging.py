"""One installed namespace: every folder of the tree is installed under `ecocluster`
(`ingest/` as `ecocluster.ingest`, `firmware-sim/` as `ecocluster.sim`, …), so installing
ecocluster never shadows another distribution's `rules` or `api`."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _folder_of(package: str) -> Path:
    """Where a package's source lives, following pyproject's `package-dir`, longest prefix."""
    mapping: dict[str, str] = PYPROJECT["package-dir"]
    parts = package.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in mapping:
            return ROOT / mapping[prefix] / Path(*parts[cut:])
    return ROOT / Path(*parts)


def test_every_package_of_the_tree_is_listed() -> None:
    listed = set(PYPROJECT["packages"])
    roots = {"ecocluster"} | set(PYPROJECT["package-dir"])
    found = set()
    for root in roots:
        folder = _folder_of(root)
        for init in folder.rglob("__init__.py"):
            rel = init.parent.relative_to(folder).parts
            name = ".".join((root, *rel))
            if _folder_of(name) == init.parent:  # not a folder mapped elsewhere
                found.add(name)
    assert found == listed, f"missing: {found - listed}, stale: {listed - found}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("ecocluster-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_has_exactly_one_top_level_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if ".dist-info/" not in n}
    assert tops == {"ecocluster"}
    top_level = [n for n in names if n.endswith(".dist-info/top_level.txt")]
    for entry in top_level:
        assert zipfile.ZipFile(wheel).read(entry).decode().split() == ["ecocluster"]


@pytest.mark.slow
def test_the_wheel_ships_the_data_files(wheel: Path) -> None:
    """Scenario files and the example territory live in plain folders: package-data names them."""
    names = set(zipfile.ZipFile(wheel).namelist())
    for scenario in (ROOT / "firmware-sim" / "scenarios").glob("*.yaml"):
        assert f"ecocluster/sim/scenarios/{scenario.name}" in names
    for module in ("cli.py", "core/registry.py", "ingest/stage.py", "rules/engine.py"):
        assert f"ecocluster/{module}" in names
    assert "ecocluster/sim/profiles/__init__.py" in names
