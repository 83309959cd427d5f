"""`ecocluster dead-letters`: what ingest rejected, read from the dead-letter log on disk.

Everything shown comes from devices (topics, field names, messages quoting payloads): each
line is escaped with `printable`, so a crafted topic cannot drive the reader's terminal.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from ecocluster.core.cli_support import echo_err, fail, load_config_or_exit
from ecocluster.core.errors import describe
from ecocluster.core.text import printable
from ecocluster.ingest.deadletter import DeadLetterLog


def register(app: typer.Typer) -> None:
    app.command("dead-letters")(dead_letters)


def dead_letters(
    config: Annotated[Path, typer.Option("--config", "-c", help="The cluster file (YAML).")],
    last: Annotated[int, typer.Option("--last", help="Show the newest N entries.")] = 10,
    reason: Annotated[str | None, typer.Option("--reason", help="Only this reason.")] = None,
) -> None:
    """Counts per reason and the newest rejected payloads (the log under the data dir, and
    each partitioned ingest worker's under `p{k}of{n}/`)."""
    if last < 0:
        fail("--last", f"must be 0 or more (got {last})")
    _, settings = load_config_or_exit(config)
    entries: list[dict[str, object]] = []
    for path in _logs(Path(settings.data_dir)):
        log = DeadLetterLog(path, max_bytes=1 << 30)
        try:
            entries += [e for e in log.entries() if reason is None or e.get("reason") == reason]
        except (OSError, ValueError) as exc:  # unreadable or corrupt: say so, in one line
            echo_err(f"{log.path}: cannot read the dead-letter log: {describe(exc)}")
            raise typer.Exit(1) from None
    entries.sort(key=_received)  # several workers: one timeline
    counts: Counter[str] = Counter()
    for e in entries:
        by_reason = e.get("reasons")  # one message whose readings failed for several reasons
        if isinstance(by_reason, dict):
            for name, n in by_reason.items():
                counts[str(name)] += _count(n)
        else:
            counts[str(e.get("reason"))] += _count(e.get("count", 1))
    if not entries:
        typer.echo("no dead letters")
        return
    for name, n in counts.most_common():
        typer.echo(f"{printable(name):22s} {n}")
    for e in entries[-last:] if last > 0 else []:
        field = f" {e.get('field')}" if e.get("field") else ""
        line = f"{e.get('recv_ms')} {e.get('topic')}{field}: [{e.get('reason')}] {e.get('message')}"
        typer.echo(printable(line))


def _logs(data_dir: Path) -> list[Path]:
    """The node's dead-letter log and every partitioned worker's (`p0of3/…`)."""
    name = "dead-letters.jsonl"
    return [data_dir / name, *sorted(data_dir.glob(f"p*of*/{name}"))]


def _received(entry: dict[str, object]) -> int:
    at = entry.get("recv_ms")
    return at if isinstance(at, int) else 0


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 1
