"""`ecocluster run --config FILE [--only STAGES] [--partition k/n|aggregate]`: a production
node (external broker and store from the settings). Thin: parse, load, hand over to
`ecocluster.node`."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from ecocluster.core.cli_support import load_config_or_exit
from ecocluster.core.logs import setup_logging

if TYPE_CHECKING:
    from ecocluster.core.settings import Settings

_err = Console(stderr=True, soft_wrap=True)

_PARTITION_HELP = (
    "This worker's share when ingest or rules run as several processes (also"
    " ECOCLUSTER_PARTITION). k/n: worker k of n (0-based) takes the sites a stable hash of"
    " the site id gives it; works on any broker (MQTT 3.1.1 too); each worker has its own"
    " persistent session and files, and a meter's rule state lives on one rules worker."
    " aggregate: the one rules worker of the organisation/territory-scope rules (k/n rules"
    " workers leave those out). Partitioned ingest needs a shared store (InfluxDB). The"
    " alternative for ingest alone on an MQTT 5 broker is a shared subscription"
    " (ECOCLUSTER_INGEST_SHARE_GROUP, a distinct client id and data dir per worker): it"
    " balances the load and survives a worker's death, but spreads a meter's readings over"
    " the workers, so energy/water deltas over-count unless the broker keeps each topic on"
    " one member; rules workers always take k/n."
)


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def run(
    config: Annotated[Path, typer.Option("--config", "-c", help="The cluster file (YAML).")],
    only: Annotated[
        str | None,
        typer.Option("--only", help="Comma-separated stages to run (default: all), e.g. ingest."),
    ] = None,
    partition: Annotated[
        str | None,
        typer.Option("--partition", metavar="k/n|aggregate", help=_PARTITION_HELP),
    ] = None,
) -> None:
    """Run the pipeline's stages against the configured broker and store."""
    from ecocluster.core.errors import FatalError, describe
    from ecocluster.node import run_node
    from ecocluster.rules.catalog import parse_rules
    from ecocluster.stages import StagePlanError, check_partition, plan

    cluster, settings = load_config_or_exit(config, parse_rules)
    setup_logging(settings.log_level, settings.log_format)
    wanted = only.split(",") if only else None
    try:
        if partition is not None:
            settings = _with_partition(settings, partition)
        check_partition(plan(wanted), settings, cluster)
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


def _with_partition(settings: Settings, text: str) -> Settings:
    """`--partition` over the setting, checked as the setting is."""
    from ecocluster.core.settings import Settings
    from ecocluster.stages import StagePlanError

    try:
        checked = Settings._valid_partition(text)
    except ValueError as exc:
        raise StagePlanError(f"--partition: {exc}") from None
    return settings.model_copy(update={"partition": checked})
