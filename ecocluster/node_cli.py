"""`ecocluster run --config FILE [--only STAGES]`: a production node (external broker and
store from the settings). Thin: parse, load, hand over to `ecocluster.node`."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ecocluster.core.cli_support import load_config_or_exit
from ecocluster.core.logs import setup_logging

_err = Console(stderr=True, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def run(
    config: Annotated[Path, typer.Option("--config", "-c", help="The cluster file (YAML).")],
    only: Annotated[
        str | None,
        typer.Option("--only", help="Comma-separated stages to run (default: all), e.g. ingest."),
    ] = None,
) -> None:
    """Run the pipeline's stages against the configured broker and store."""
    from ecocluster.core.errors import FatalError, describe
    from ecocluster.node import run_node
    from ecocluster.rules.catalog import parse_rules
    from ecocluster.stages import StagePlanError, plan

    cluster, settings = load_config_or_exit(config, parse_rules)
    setup_logging(settings.log_level, settings.log_format)
    wanted = only.split(",") if only else None
    try:
        plan(wanted)
    except StagePlanError as exc:
        _err.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(2) from None
    try:
        asyncio.run(run_node(cluster, settings, wanted))
    except FatalError as exc:  # a stage failed for good (e.g. credentials refused)
        _err.print(f"node stopped: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except Exception as exc:  # a bug: still one line; the traceback at DEBUG
        logging.getLogger("ecocluster.node").debug("node failed", exc_info=exc)
        _err.print(f"node stopped: {describe(exc)}", markup=False, highlight=False)
        raise typer.Exit(1) from None
