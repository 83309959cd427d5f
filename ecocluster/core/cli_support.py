"""What every command that reads a cluster file shares: load it and its settings, or print
every problem (`file:line field.path: message`) and exit 1 — never a traceback for a
user's mistake."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from ecocluster.core.registry import Cluster, ConfigError, load_cluster
from ecocluster.core.settings import Settings, load_settings

__all__ = ["load_config_or_exit"]

_err = Console(stderr=True, soft_wrap=True)


def load_config_or_exit(path: Path) -> tuple[Cluster, Settings]:
    try:
        cluster = load_cluster(path)
        settings = load_settings(cluster.settings)
    except ConfigError as exc:
        for issue in exc.issues:
            _err.print(str(issue), markup=False, highlight=False)
        raise typer.Exit(1) from None
    except ValueError as exc:
        _err.print(f"{path}: settings: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    return cluster, settings
