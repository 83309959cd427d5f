"""`ecocluster dead-letters`: what ingest rejected, read from the dead-letter log on disk."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ecocluster.core.registry import ConfigError, load_cluster
from ecocluster.core.settings import load_settings
from ecocluster.ingest.deadletter import DeadLetterLog

_out = Console(soft_wrap=True)
_err = Console(stderr=True, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("dead-letters")(dead_letters)


def dead_letters(
    config: Annotated[Path, typer.Option("--config", "-c", help="The cluster file (YAML).")],
    last: Annotated[int, typer.Option("--last", help="Show the newest N entries.")] = 10,
    reason: Annotated[str | None, typer.Option("--reason", help="Only this reason.")] = None,
) -> None:
    """Counts per reason and the newest rejected payloads (the log under the data dir)."""
    try:
        settings = load_settings(load_cluster(config).settings)
    except (ConfigError, ValueError) as exc:
        _err.print(f"{config}: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    log = DeadLetterLog(Path(settings.data_dir) / "dead-letters.jsonl", max_bytes=1 << 30)
    entries = [e for e in log.entries() if reason is None or e.get("reason") == reason]
    counts: Counter[str] = Counter()
    for e in entries:
        counts[str(e.get("reason"))] += int(e.get("count", 1))  # type: ignore[call-overload]
    if not entries:
        _out.print("no dead letters", markup=False)
        return
    for name, n in counts.most_common():
        _out.print(f"{name:22s} {n}", markup=False, highlight=False)
    for e in entries[-last:] if last > 0 else []:
        field = f" {e['field']}" if e.get("field") else ""
        _out.print(
            f"{e['recv_ms']} {e['topic']}{field}: [{e['reason']}] {e['message']}",
            markup=False,
            highlight=False,
        )
