"""`ecocluster alerts …` and `ecocluster oncall` (registered by `ecocluster.cli`).

ecocluster alerts list --config cluster.yml [--state firing] [--site lago]
ecocluster alerts show 4821 --config cluster.yml          (with the audit trail)
ecocluster alerts ack 4821 --by rossi --comment "on my way" --config cluster.yml
ecocluster alerts silence add --match site=lago --for 2h --reason "boiler work" --by rossi
ecocluster alerts silence list|expire ID
ecocluster alerts test-notify rossi --config cluster.yml  (one test message per channel)
ecocluster oncall --config cluster.yml                    (who is on duty now and next)

They work on the alert database the settings name (the node's, when run beside it).
Untrusted text (labels, comments) is escaped before it reaches the terminal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from ecocluster.core.cli_support import fail, load_config_or_exit
from ecocluster.core.durations import parse_duration
from ecocluster.core.errors import EcoclusterError, describe

if TYPE_CHECKING:
    from ecocluster.alerts.service import AlertService

__all__ = ["register"]

T = TypeVar("T")
_out = Console(soft_wrap=True, highlight=False)
Config = Annotated[Path, typer.Option("--config", help="The cluster file (YAML).")]


def _local(ms: int | None, tz: str) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S")


def _with_service(config: Path, work: Callable[[AlertService], Awaitable[T]]) -> T:
    # Imported here: registering the commands must not load SQLAlchemy, Alembic, Apprise.
    from ecocluster.alerts.service import AlertNotFound, AlertService, SilenceError

    cluster, settings = load_config_or_exit(config)

    async def run() -> T:
        service = AlertService(cluster, settings)
        await service.start()
        try:
            return await work(service)
        finally:
            await service.close()

    try:
        return asyncio.run(run())
    except (AlertNotFound, SilenceError) as exc:
        fail("alerts", str(exc))
    except EcoclusterError as exc:
        fail("alerts", describe(exc))


def register(app: typer.Typer) -> None:
    alerts = typer.Typer(
        help="Alerts: list, show, acknowledge, silence, test a contact.", no_args_is_help=True
    )
    silence = typer.Typer(help="Silences and maintenance windows.", no_args_is_help=True)
    alerts.add_typer(silence, name="silence")
    app.add_typer(alerts, name="alerts")

    @alerts.command("list")
    def list_(
        config: Config,
        state: Annotated[str | None, typer.Option(help="firing or resolved")] = None,
        severity: Annotated[str | None, typer.Option()] = None,
        site: Annotated[str | None, typer.Option()] = None,
        org: Annotated[str | None, typer.Option()] = None,
        limit: Annotated[int, typer.Option(min=1)] = 50,
    ) -> None:
        """Alerts, newest change first."""
        cluster, _ = load_config_or_exit(config)
        found = _with_service(
            config,
            lambda s: s.list_alerts(
                state=state, severity=severity, site=site, org=org, limit=limit
            ),
        )
        table = Table("code", "state", "severity", "rule", "site", "since", "acked by", "assignee")
        for a in found:
            table.add_row(
                a.code,
                a.state,
                a.severity,
                escape(a.rule),
                escape(a.labels.get("site", "")),
                _local(a.starts_ms, cluster.territory.timezone),
                escape(a.acked_by or "-"),
                escape(a.assignee or "-"),
            )
        _out.print(table)

    @alerts.command("show")
    def show(
        ref: Annotated[str, typer.Argument(help="Alert code (or #id).")], config: Config
    ) -> None:
        """One alert with its audit trail and notifications."""
        cluster, _ = load_config_or_exit(config)
        tz = cluster.territory.timezone
        d = _with_service(config, lambda s: s.get_alert(ref))
        a = d.alert
        _out.print(f"[bold]{a.code}[/] {escape(a.rule)} {a.severity} {a.state}")
        _out.print("labels: " + escape(", ".join(f"{k}={v}" for k, v in sorted(a.labels.items()))))
        _out.print(
            f"value {a.value} threshold {a.threshold}; since {_local(a.starts_ms, tz)}"
            f"; ended {_local(a.ends_ms, tz)}"
        )
        if a.acked_ms:
            _out.print(
                f"acknowledged by {escape(a.acked_by or '')} at {_local(a.acked_ms, tz)}"
                f" via {a.ack_channel}: {escape(a.ack_comment or '')}"
            )
        trail = Table("when", "event", "actor", "channel", "detail", title="audit trail")
        for e in d.audit:
            trail.add_row(
                _local(e.at_ms, tz),
                e.event,
                escape(e.actor or ""),
                e.channel or "",
                escape(", ".join(f"{k}={v}" for k, v in e.detail.items())),
            )
        _out.print(trail)
        notes = Table(
            "id", "kind", "contact", "channel", "status", "attempts", "error", title="notifications"
        )
        for n in d.notifications:
            notes.add_row(
                str(n.id),
                n.kind,
                n.contact_id,
                str(n.channel),
                n.status,
                str(n.attempts),
                escape(n.last_error or ""),
            )
        _out.print(notes)

    @alerts.command("ack")
    def ack(
        ref: Annotated[str, typer.Argument(help="Alert code (or #id).")],
        config: Config,
        by: Annotated[str, typer.Option(help="Who acknowledges.")],
        comment: Annotated[str | None, typer.Option()] = None,
    ) -> None:
        """Acknowledge an alert: stops its escalation and repeats."""
        result = _with_service(config, lambda s: s.ack(ref, by=by, comment=comment, channel="cli"))
        verb = "acknowledged" if result.changed else "was already acknowledged"
        _out.print(f"{result.alert.code} {verb} by {escape(result.alert.acked_by or '')}")

    @silence.command("add")
    def silence_add(
        config: Config,
        match: Annotated[list[str], typer.Option("--match", help="label=value, =~, !=, !~")],
        reason: Annotated[str, typer.Option(help="Why (mandatory).")],
        by: Annotated[str, typer.Option(help="Author.")],
        for_: Annotated[str, typer.Option("--for", help="Duration, e.g. 2h.")] = "2h",
        end_on_resolve: Annotated[bool, typer.Option(help="End when its alerts recover.")] = False,
    ) -> None:
        """Silence matching alerts for a while (a maintenance window)."""
        try:
            duration = parse_duration(for_)
        except ValueError as exc:
            fail("--for", str(exc))
        s = _with_service(
            config,
            lambda svc: svc.add_silence(
                match, author=by, reason=reason, duration=duration, end_on_resolve=end_on_resolve
            ),
        )
        _out.print(
            f"silence {s.id} until "
            f"{datetime.fromtimestamp(s.ends_ms / 1000, UTC):%Y-%m-%d %H:%M} UTC"
        )

    @silence.command("list")
    def silence_list(config: Config, all_: Annotated[bool, typer.Option("--all")] = False) -> None:
        """Active silences (`--all`: expired too)."""
        cluster, _ = load_config_or_exit(config)
        tz = cluster.territory.timezone
        found = _with_service(config, lambda s: s.list_silences(active_only=not all_))
        table = Table("matchers", "from", "until", "author", "reason", "expired")
        table.columns.insert(0, Column("id", no_wrap=True, min_width=36))
        for s in found:
            table.add_row(
                s.id,
                escape(", ".join(s.matchers)),
                _local(s.starts_ms, tz),
                _local(s.ends_ms, tz),
                escape(s.author),
                escape(s.reason),
                _local(s.expired_ms, tz) if s.expired_ms else "",
            )
        _out.print(table)

    @silence.command("expire")
    def silence_expire(
        silence_id: str,
        config: Config,
        by: Annotated[str, typer.Option(help="Who ends it.")] = "cli",
    ) -> None:
        """End a silence now."""
        s = _with_service(config, lambda svc: svc.expire_silence(silence_id, by=by))
        _out.print(f"silence {s.id} expired")

    @alerts.command("test-notify")
    def test_notify(contact: str, config: Config) -> None:
        """Send a test message through each of a contact's channels; report each outcome."""
        outcomes: list[Any] = _with_service(config, lambda s: s.test_notify(contact))
        failed = 0
        for o in outcomes:
            status = "ok" if o.ok else f"FAILED: {escape(o.error or '')}"
            failed += not o.ok
            _out.print(f"channel {o.channel} ({o.scheme}): {status}")
        if not outcomes:
            _out.print(f"{contact} has no channels")
        if failed or not outcomes:
            raise typer.Exit(1)

    @app.command("oncall")
    def oncall(config: Config) -> None:
        """Who is on duty now and next, for every schedule."""
        from ecocluster.alerts.oncall import on_duty_now_and_next

        cluster, _ = load_config_or_exit(config)
        tz = cluster.territory.timezone
        now = datetime.now(UTC)
        table = Table("schedule", "on duty", "until", "next", "from")
        for schedule in cluster.schedules:
            current, following = on_duty_now_and_next(schedule, now, tz)
            name = cluster.contact_by_id.get(current.contact)
            nxt = cluster.contact_by_id.get(following.contact)
            table.add_row(
                schedule.name,
                escape(name.name if name else current.contact)
                + (" (override)" if current.override else ""),
                f"{current.until:%a %d/%m %H:%M}",
                escape(nxt.name if nxt else following.contact),
                f"{following.since:%a %d/%m %H:%M}",
            )
        _out.print(table)
