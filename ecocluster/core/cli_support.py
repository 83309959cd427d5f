"""What every command shares at its boundary with the user: load the cluster file and its
settings, or say what is wrong and exit 2, never with a traceback for a user's mistake.

Exit code 2 is a usage error (click's convention): a bad option value prints one line
naming the option (`--tick: …`), a bad cluster file one line per problem
(`cluster.yml:42 rules[3].above: …`). Every line is escaped with `printable`: keys, values
and file names come from outside and may hold terminal control sequences.

    cluster, settings = load_config_or_exit(path)            # ecocluster run, backtest, …
    cluster = load_cluster_or_exit(path, parse_rules)        # extra checks raise ConfigError
    fail("--tick", "must be at least 1s")
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import typer

from ecocluster.core.registry import Cluster, ConfigError, load_cluster
from ecocluster.core.settings import Settings, load_settings
from ecocluster.core.text import printable

__all__ = [
    "EXIT_USAGE",
    "ClusterCheck",
    "echo_err",
    "fail",
    "load_cluster_or_exit",
    "load_config_or_exit",
]

#: The exit code of every input error (an option, an argument, a file).
EXIT_USAGE = 2
#: A further check of a loaded cluster (the rules stage's `parse_rules`): raises ConfigError.
ClusterCheck = Callable[[Cluster], object]


def echo_err(text: object) -> None:
    """One escaped line on stderr."""
    typer.echo(printable(text), err=True)


def fail(where: object, message: str) -> NoReturn:
    """Print `where: message` (an option name or a file) as one line and exit 2."""
    echo_err(f"{where}: {message}")
    raise typer.Exit(EXIT_USAGE)


def load_cluster_or_exit(path: Path, *checks: ClusterCheck) -> Cluster:
    """The cluster file, validated, or every problem printed (`file:line path: message`)
    and exit 2. `checks` run on the loaded cluster; their `ConfigError`s print the same way."""
    try:
        cluster = load_cluster(path)
        for check in checks:
            check(cluster)
    except ConfigError as exc:
        for issue in exc.issues:
            echo_err(issue)
        raise typer.Exit(EXIT_USAGE) from None
    return cluster


def load_config_or_exit(path: Path, *checks: ClusterCheck) -> tuple[Cluster, Settings]:
    """`load_cluster_or_exit`, then the settings (environment over the file's block)."""
    cluster = load_cluster_or_exit(path, *checks)
    try:
        settings = load_settings(cluster.settings)
    except ValueError as exc:
        fail(path, f"settings: {exc}")
    return cluster, settings
