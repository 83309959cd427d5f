"""Data flows one way — composition → api → alerts → rules → ingest → core, sim → core — and
import-linter (pyproject `[tool.importlinter]`) is what enforces it, on the installed package."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _installed_package() -> Path:
    import ecocluster

    return Path(ecocluster.__file__).parent


def _lint_imports(cwd: Path, extra_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run import-linter from a directory that is not the repository, so that `ecocluster`
    is the installed package (the source folder alone lacks the mapped-in stages)."""
    env = {"PATH": "/usr/bin:/bin"}
    if extra_path is not None:
        env["PYTHONPATH"] = str(extra_path)
    script = (
        "import sys; from importlinter.cli import lint_imports_command;"
        f"sys.argv = ['lint-imports', {str(ROOT / 'pyproject.toml')!r}, '--no-cache'];"
        "lint_imports_command()"
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_import_contracts_hold(tmp_path: Path) -> None:
    result = _lint_imports(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "bad_import"),
    [
        ("core/durations.py", "import ecocluster.ingest.codecs"),
        ("ingest/codecs.py", "import ecocluster.rules.engine"),
        ("sim/noise.py", "import ecocluster.ingest.codecs"),
        ("rules/engine.py", "import ecocluster.node"),
    ],
)
def test_a_wrong_import_breaks_a_contract(tmp_path: Path, module: str, bad_import: str) -> None:
    """The contracts can fail: a copy of the package with one import against the flow."""
    copy = tmp_path / "site" / "ecocluster"
    shutil.copytree(_installed_package(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + f"\n{bad_import}  # deliberately wrong\n")
    result = _lint_imports(tmp_path, extra_path=tmp_path / "site")
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout
