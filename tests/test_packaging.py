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


def test_a_built_wheel_ships_the_data_files(tmp_path: Path) -> None:
    """Scenario files live in a plain folder, not a package: package-data must name them."""
    import subprocess
    import sys
    import zipfile

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("ecocluster-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for scenario in (ROOT / "firmware-sim" / "scenarios").glob("*.yaml"):
        assert f"firmware_sim/scenarios/{scenario.name}" in names
    assert "firmware_sim/profiles/__init__.py" in names
    assert "ecocluster/cli.py" in names
