#!/usr/bin/env bash
# Lint, format check and type check (needs `pip install -e '.[dev]'`). mypy reads files, so
# it runs on the package as pip assembles it from the folders (tests/tree.py).
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
$py -m ruff check .
$py -m ruff format --check .
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
$py -m tests.tree "$tree" >/dev/null
(cd "$tree" && "$OLDPWD/$py" -m mypy --config-file "$OLDPWD/pyproject.toml" -p ecocluster)
