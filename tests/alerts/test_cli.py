"""`ecocluster alerts …` and `ecocluster oncall` against a real alert database."""

from __future__ import annotations

import asyncio

import typer
from typer.testing import CliRunner

from ecocluster.alerts.cli import register
from ecocluster.alerts.service import AlertService
from ecocluster.core.registry import load_cluster
from ecocluster.core.settings import load_settings
from tests.alerts.conftest import ROUTES, transition


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_list_show_ack_silence_and_test_notify(make_cluster, tmp_path, receiver) -> None:
    base = make_cluster(ROUTES)
    path = tmp_path / "cli.yaml"
    path.write_text(base.source.read_text() + f"settings: {{data_dir: '{tmp_path / 'd'}'}}\n")
    cluster = load_cluster(path)

    async def fire() -> object:
        svc = AlertService(cluster, load_settings(cluster.settings))
        await svc.start()
        await svc.on_transitions([transition()])
        (found,) = await svc.list_alerts()
        await svc.close()
        return found

    alert = asyncio.run(fire())
    run = CliRunner().invoke
    app = _app()
    listed = run(app, ["alerts", "list", "--config", str(path)])
    assert listed.exit_code == 0 and alert.code in listed.output
    acked = run(
        app,
        ["alerts", "ack", alert.code, "--by", "rossi", "--comment", "on it", "--config", str(path)],
    )
    assert acked.exit_code == 0 and "acknowledged by rossi" in acked.output
    shown = run(app, ["alerts", "show", alert.code, "--config", str(path)])
    assert shown.exit_code == 0 and "fired" in shown.output and "acked" in shown.output
    missing = run(app, ["alerts", "show", "99999", "--config", str(path)])
    assert missing.exit_code == 2 and "no alert" in missing.output
    added = run(
        app,
        [
            "alerts",
            "silence",
            "add",
            "--match",
            "site=lago",
            "--reason",
            "works",
            "--by",
            "rossi",
            "--for",
            "1h",
            "--config",
            str(path),
        ],
    )
    assert added.exit_code == 0
    silence_id = added.output.split()[1]
    assert silence_id in run(app, ["alerts", "silence", "list", "--config", str(path)]).output
    assert (
        run(app, ["alerts", "silence", "expire", silence_id, "--config", str(path)]).exit_code == 0
    )
    receiver.status = 500
    tested = run(app, ["alerts", "test-notify", "walker", "--config", str(path)])
    assert "channel 0 (json): FAILED" in tested.output and "channel 1 (mailto): ok" in tested.output
    assert tested.exit_code == 1
    assert "127.0.0.1:" not in tested.output  # never the URL
    oncall = run(app, ["oncall", "--config", str(path)])
    assert oncall.exit_code == 0
