"""Data flows one way — composition → api → alerts → rules → ingest → core, sim → core — and
import-linter (pyproject `[tool.importlinter]`) is what enforces it, on the installed package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.tree import assemble

ROOT = Path(__file__).resolve().parent.parent


def _lint_imports(cwd: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on the assembled tree in `site`, from a directory that is not the
    repository (whose `ecocluster/` folder alone lacks the mapped-in stages)."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "PYTHONSAFEPATH": "1"}
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
    assemble(tmp_path / "site")
    result = _lint_imports(tmp_path, tmp_path / "site")
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
    package = assemble(tmp_path / "site")
    target = package / module
    target.write_text(target.read_text() + f"\n{bad_import}  # deliberately wrong\n")
    result = _lint_imports(tmp_path, tmp_path / "site")
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout
