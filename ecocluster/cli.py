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
from ecocluster.core.cli_support import load_config_or_exit
from ecocluster.core.logs import setup_logging
from ecocluster.core.settings import load_settings
from ecocluster.core.text import printable

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
    "ecocluster.alerts.cli",
    "ecocluster.api.cli",
    "ecocluster.node_cli",
    "ecocluster.demo_cli",
    "ecocluster.deploy.cli",
    "ecocluster.evaluation.cli",
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
    """Validate a cluster file, its rules and settings; print a summary, or every error as
    `file:line field.path: message` (exit 2)."""
    from ecocluster.rules.catalog import parse_rules  # a stage: imported when used

    cluster, _ = load_config_or_exit(file, parse_rules)
    typer.echo(printable(f"{file}: OK: {cluster.summary()}"))


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
    """The console script: usage errors (a missing option, a bad number) are one line naming
    the option, exit code 2, never click's framed box or a traceback."""
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        raise SystemExit(130) from None
    except typer.TyperException as exc:
        typer.echo(printable(exc.format_message()), err=True)
        raise SystemExit(exc.exit_code) from None
    raise SystemExit(code if isinstance(code, int) else 0)
