"""The `ecocluster` command. Thin: each command parses its options and calls library code.

Stages add their own commands from their own modules (`register(app)`), listed in
`_COMMAND_MODULES`, so the base package never imports a stage at import time.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ecocluster import __version__
from ecocluster.core.logs import setup_logging
from ecocluster.core.registry import ConfigError, load_cluster
from ecocluster.core.settings import load_settings

app = typer.Typer(
    name="ecocluster",
    help="Telemetry and emergency-response backend of an Eco-Cluster.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_out = Console(soft_wrap=True)
_err = Console(stderr=True, soft_wrap=True)

#: Modules that add commands with `register(app)`: listed once an issue builds them.
_COMMAND_MODULES: tuple[str, ...] = (
    "ecocluster.sim.cli",
    "ecocluster.ingest.cli",
    "ecocluster.rules.cli",
    "ecocluster.node_cli",
    "ecocluster.demo_cli",
)


def _version(value: bool) -> None:
    if value:
        _out.print(f"ecocluster {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    try:
        settings = load_settings()
    except ValueError:
        setup_logging()
    else:
        setup_logging(settings.log_level, settings.log_format)


@app.command("check-config")
def check_config(
    file: Annotated[Path, typer.Argument(help="The cluster file (YAML).")],
) -> None:
    """Validate a cluster file; print a summary, or every error with file, line and field."""
    try:
        cluster = load_cluster(file)
        load_settings(cluster.settings)
    except ConfigError as exc:
        for issue in exc.issues:
            _err.print(str(issue), markup=False, highlight=False)
        _err.print(f"{len(exc.issues)} error(s) in {file}", style="bold red")
        raise typer.Exit(1) from None
    except ValueError as exc:
        _err.print(f"{file}: settings: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    _out.print(f"{file}: OK: {cluster.summary()}", markup=False, highlight=False)


def _register_stage_commands() -> None:
    for name in _COMMAND_MODULES:
        if importlib.util.find_spec(name.rsplit(".", 1)[0]) is None:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            spec = None
        if spec is None:
            continue
        importlib.import_module(name).register(app)


_register_stage_commands()


def main() -> None:
    app()
