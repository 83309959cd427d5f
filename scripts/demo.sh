#!/usr/bin/env bash
# The main job (README): everything embedded — MQTT broker, DuckDB store, simulator,
# ingest and rules. Creates .venv, installs ecocluster, runs `ecocluster demo` with the
# given arguments (default: 60 s, then a summary). Nothing else to install.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "python3-venv is missing: sudo apt-get install -y python3-venv" >&2
    exit 1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check . >/dev/null
if [ $# -eq 0 ]; then set -- --duration 60; fi
exec .venv/bin/ecocluster demo "$@"
