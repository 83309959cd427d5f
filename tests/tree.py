"""The `ecocluster` package as pip assembles it from the repository's folders.

`ecocluster/` holds only the composition root and the kernel; pyproject's `package-dir` maps
`ingest/`, `rules/`, … in under it at install time. Tools that read files rather than import
(import-linter's graph, mypy) need that tree on disk: `assemble(into)` copies it there.
Command line: `python -m tests.tree DEST` (scripts/lint.sh uses it for mypy).
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def assemble(into: Path) -> Path:
    """Copy the installed layout of `ecocluster` into `into`; returns the package folder."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    package = into / "ecocluster"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.rmtree(package, ignore_errors=True)
    shutil.copytree(ROOT / "ecocluster", package, ignore=skip)
    for name, folder in sorted(setuptools["package-dir"].items()):
        shutil.copytree(ROOT / folder, into / Path(*name.split(".")), ignore=skip)
    return package


if __name__ == "__main__":
    print(assemble(Path(sys.argv[1])))
