"""The test suite. Importing this package (pytest does; so does `python -m tests.…` for a
helper process) first makes sure `ecocluster` means the installed package."""

from __future__ import annotations

import os
import sys


def _prefer_the_installed_package() -> None:
    """Tests run against the installed `ecocluster`, never the source folder of the same name.

    The repository root is on sys.path (pytest's rootdir, `python -m`'s cwd) so that `tests`
    imports; but there `ecocluster/` is only the composition folder: `ecocluster.ingest` and
    the other stages are mapped in from sibling folders at install time (pyproject
    `package-dir`). Moving the root to the end lets site-packages (or an editable install's
    finder) answer `import ecocluster` first while `tests` still resolves.
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    mine = [p for p in sys.path if os.path.abspath(p or os.curdir) == root]
    for p in mine:
        sys.path.remove(p)
    sys.path.extend(mine)
    for name in [m for m in sys.modules if m == "ecocluster" or m.startswith("ecocluster.")]:
        del sys.modules[name]


_prefer_the_installed_package()
