"""The engine's pending/firing state on disk, so `for` timers and firing alerts survive a
restart. Written atomically (temp file, fsync, rename): a crash leaves the old snapshot."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import orjson

__all__ = ["load_snapshot", "save_snapshot"]

_log = logging.getLogger(__name__)


def save_snapshot(path: Path, snapshot: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(orjson.dumps(snapshot))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_snapshot(path: Path) -> dict[str, Any] | None:
    """The saved snapshot, or None when there is none or it cannot be read (logged)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        _log.warning("cannot read the rules snapshot %s: %s", path, exc)
        return None
    try:
        loaded = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        _log.warning("ignoring a corrupt rules snapshot %s: %s", path, exc)
        return None
    return loaded if isinstance(loaded, dict) else None
