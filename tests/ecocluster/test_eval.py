"""`ecocluster eval`: the scorer on tiny cases with the answer in sight, and the command on
a short scenario through the real pipeline (a private Mosquitto, ingest, DuckDB, rules)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ecocluster.cli import app
from ecocluster.core.cluster import RuleSpec
from ecocluster.core.registry import load_cluster
from ecocluster.core.transitions import QueueSink
from ecocluster.core.types import ReadingBatch, SeriesKey
from ecocluster.evaluation.cli import parse_seeds
from ecocluster.evaluation.drive import EventTimeDriver
from ecocluster.evaluation.ingest_checks import DeadLetter, RunEvidence, Sent, check_fault
from ecocluster.evaluation.score import FaultOutcome, Firing, score_run, summarise
from ecocluster.rules.stage import RulesStage
from tests.services import InfluxServer, MosquittoServer

MIN = 60_000
T0 = 1_770_019_200_000  # 2026-02-02T08:00Z
RULES = [
    RuleSpec(name="pipe-burst", type="burst", quantity="flow_lpm"),
    RuleSpec(name="power-spike", type="burst", quantity="power_w"),
    RuleSpec(name="data-absence", type="absence"),
]


def _fault(kind: str, site: str, meter: str, start: int, end: int, **extra: object) -> dict:
    return {"id": f"{kind}-1", "kind": kind, "site": site, "meter": meter,
            "quantity": extra.get("quantity"), "start_ms": start, "end_ms": end,
            "params": extra.get("params", {})}  # fmt: skip


def test_a_firing_on_the_faulted_meter_finds_the_fault_and_times_it() -> None:
    truth = [_fault("burst", "ps-a", "wm-01", T0, T0 + 30 * MIN)]
    firings = [
        Firing("pipe-burst", "ps-a", "wm-01", T0 + 5 * MIN),
        Firing("power-spike", "office-a", "em-01", T0 + 7 * MIN),  # nothing wrong there
    ]
    score = score_run(RULES, truth, firings, meter_days=2.0)
    (fault,) = score.faults
    assert fault.found and fault.ttd_min == 5.0 and fault.first_rule == "pipe-burst"
    assert score.explained == [True, False]
    summary = summarise([score])
    burst = next(k for k in summary.kinds if k.kind == "burst")
    assert (burst.faults, burst.found, burst.recall, burst.precision) == (1, 1, 1.0, 1.0)
    assert burst.ttd_p50_min == 5.0
    assert summary.unexplained == 1
    assert summary.false_per_100md == pytest.approx(50.0)  # 1 per 2 meter-days
    spike_rule = next(r for r in summary.rules if r.rule == "power-spike")
    assert (spike_rule.firings, spike_rule.unexplained) == (1, 1)


def test_a_firing_elsewhere_or_too_late_does_not_count() -> None:
    truth = [_fault("burst", "ps-a", "wm-01", T0, T0 + 30 * MIN)]
    firings = [
        Firing("pipe-burst", "ps-b", "wm-01", T0 + 5 * MIN),  # another site
        Firing("pipe-burst", "ps-a", "wm-01", T0 + 30 * MIN + 11 * MIN),  # past the grace
        Firing("power-spike", "ps-a", "wm-01", T0 + 2 * MIN),  # not a burst detector
    ]
    score = score_run(RULES, truth, firings, meter_days=1.0)
    assert not score.faults[0].found
    row = next(k for k in summarise([score]).kinds if k.kind == "burst")
    assert row.recall == 0.0 and row.found == 0


def test_a_kind_whose_rule_the_file_lacks_says_so_and_scores_zero() -> None:
    truth = [_fault("stuck", "aq-a", "aq-01", T0, T0 + 4 * 60 * MIN, quantity="pm10_ugm3")]
    summary = summarise([score_run(RULES, truth, [], meter_days=1.0)])
    (row,) = summary.kinds
    assert row.handled_by == "no rule (stuck) in this file"
    assert row.recall == 0.0


def _evidence(protocol: str, dead: list[DeadLetter]) -> RunEvidence:
    topic = "eval-x/office-a/em-01/data"
    return RunEvidence(
        prefix="eval-x",
        max_future_ms=300_000,
        max_payload_bytes=65_536,
        protocol=protocol,
        meter_index={("office-a", "em-01"): 0},
        injected=[
            Sent(T0 + 1 * MIN, 0, topic, "malformed", 10),
            Sent(T0 + 2 * MIN, 0, topic, "malformed", 10),
            Sent(T0 + 3 * MIN, 0, topic, "malformed", 70_050),  # over the packet limit
        ],
        data_due={},
        dead_letters=dead,
        register_flags=[],
        series={},
    )


@pytest.mark.parametrize(("protocol", "handled"), [("5", True), ("3.1.1", False)])
def test_malformed_messages_count_as_handled_only_when_refused(
    protocol: str, handled: bool
) -> None:
    """Two payloads dead-lettered; the oversized one never reaches ingest over MQTT 5 (the
    broker honours the subscriber's Maximum Packet Size) but must be refused over 3.1.1."""
    dead = [
        DeadLetter("eval-x/office-a/em-01/data", "not_json", T0 + 1 * MIN),
        DeadLetter("eval-x/office-a/em-01/data", "schema", T0 + 2 * MIN),
        DeadLetter("eval-x/other/em-01/data", "not_json", T0 + 2 * MIN),  # not this meter
    ]
    fault = FaultOutcome("m-1", "malformed", "office-a", "em-01", None, T0, T0 + 10 * MIN)
    check_fault(fault, {}, _evidence(protocol, dead))
    assert fault.found is handled
    assert fault.reasons["not_json"] == 1 and fault.reasons["schema"] == 1


def test_seeds_parse_ranges_and_lists() -> None:
    assert parse_seeds("1-5") == [1, 2, 3, 4, 5]
    assert parse_seeds("3, 1,3,7-8") == [3, 1, 7, 8]
    for bad in ("5-1", "x", "1-", ""):
        with pytest.raises(ValueError):
            parse_seeds(bad)


async def test_the_driver_ticks_every_simulated_minute_inside_one_batch(tmp_path: Path) -> None:
    """An ingest batch spanning 40 minutes of a backfill is evaluated minute by minute, as
    a live node would: a one-minute spike in its middle fires the burst rule at the next
    minute. Ticking once per batch (at its newest reading) would miss it."""
    (tmp_path / "cluster.yaml").write_text(CLUSTER)
    cluster = load_cluster(tmp_path / "cluster.yaml")
    sink = QueueSink()
    stage = RulesStage(cluster, sinks=[sink], event_time=True)
    driver = EventTimeDriver(stage, T0, T0 + 60 * MIN, MIN)
    key = SeriesKey("comune", "office-a", "em-01", "power_w")
    ts = T0 + np.arange(40, dtype=np.int64) * MIN + 30_000  # mid-minute readings
    values = np.full(40, 5_000.0)
    values[20] = 25_000.0  # the spike, in the minute [T0+20m, T0+21m)
    batch = ReadingBatch([key], np.zeros(40, np.int64), ts, values, np.full(40, np.nan))
    await driver.on_readings(batch)
    assert _spikes(sink) == [T0 + 21 * MIN]
    assert driver.next_tick_ms == T0 + 40 * MIN  # ticked through the newest full minute
    await driver.finish()
    assert driver.next_tick_ms == T0 + 41 * MIN  # and one more, never past the data
    once, once_sink = RulesStage(cluster, event_time=True), QueueSink()
    once.sinks = [once_sink]
    await once.on_readings(batch)
    await once.tick(int(ts[-1]))
    assert _spikes(once_sink) == []  # what a tick per ingest batch would have seen


def _spikes(sink: QueueSink) -> list[int]:
    fired = []
    while not sink.queue.empty():
        t = sink.queue.get_nowait()
        if t.state == "firing" and t.rule == "power-spike":
            fired.append(t.at_ms)
    return fired


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenario", "stress-mix", "--seeds", "5-1"], "--seeds: range 5-1 runs backwards"),
        (["--scenario", "no-such-scenario"], "--scenario: no-such-scenario: cannot read"),
        (["--scenario", "stress-mix", "--config", "/no/such.yaml"], "--config: /no/such.yaml"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["eval", *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


# -- the command, through the real pipeline ------------------------------------------------

CLUSTER = """
territory: {id: evaltest, name: "Eval test", timezone: Europe/Rome}
organisations:
  - {id: acque, name: "Acque", kind: private}
  - {id: comune, name: "Comune", kind: public}
sites:
  - {id: ps-a, org: acque, name: "Pumping A", category: pumping_station, lat: 44.37,
     lon: 10.27, altitude_m: 880, contracted_power_w: 45000}
  - {id: office-a, org: comune, name: "Office A", category: office, lat: 44.43, lon: 10.40,
     altitude_m: 700, contracted_power_w: 45000}
meters:
  - {id: wm-01, site: ps-a, quantities: [water_m3, flow_lpm], interval: 1m}
  - {id: em-01, site: office-a, quantities: [energy_kwh, power_w], interval: 1m}
rules:
  - {name: power-spike, type: burst, quantity: power_w, window: 1m, baseline: 10m, factor: 3,
     jump: 3000, severity: warning}
  - {name: pipe-burst, type: burst, quantity: flow_lpm, jump: 200, baseline: 30m, window: 5m,
     severity: critical, match: {org: acque}}
  - {name: data-absence, type: absence, after: 15m, severity: warning}
"""
SCENARIO = """
name: eval-test
description: Three hours, a burst, a spike, a dropout and malformed payloads.
start: 2026-02-02T09:00:00+01:00
duration: 3h
faults:
  - {kind: malformed, site: office-a, meter: em-01, at: 20m, duration: 30m, params: {every_s: 600}}
  - {kind: burst, site: ps-a, meter: wm-01, at: 1h, duration: 30m}
  - {kind: spike, site: office-a, meter: em-01, quantity: power_w, at: 1h30m, duration: 1m,
     params: {factor: 5}}
  - {kind: dropout, site: office-a, meter: em-01, at: 2h, duration: 30m}
"""


def _eval(
    tmp: Path, cluster: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    (tmp / "cluster.yaml").write_text(cluster)
    (tmp / "scenario.yaml").write_text(SCENARIO)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ECOCLUSTER_")}
    environ["ECOCLUSTER_DATA_DIR"] = str(tmp / "data")
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "ecocluster", "eval", "--scenario", str(tmp / "scenario.yaml"),
         "--config", str(tmp / "cluster.yaml"), "--out", str(tmp / "out"), *extra],
        cwd=tmp, env=environ, capture_output=True, text=True, timeout=240,
    )  # fmt: skip


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open() as fh:
        return {row["fault kind"]: row for row in csv.DictReader(fh)}


@pytest.mark.slow
@pytest.mark.e2e
def test_eval_scores_a_short_scenario_and_draws_it(tmp_path: Path) -> None:
    done = _eval(tmp_path, CLUSTER)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "Detection per fault kind" in out and "Firings per rule" in out
    assert "private Mosquitto" in out  # installed with the test harness
    assert "INFO" not in out + done.stderr  # library chatter stays out
    rows = _rows(tmp_path / "out" / "eval.csv")
    assert {"burst", "spike", "dropout", "malformed"} <= set(rows)
    assert rows["burst"]["recall"] == "1.00" and rows["burst"]["handled by"] == "pipe-burst"
    assert rows["spike"]["recall"] == "1.00"
    assert rows["malformed"]["handled by"].startswith("ingest")
    assert rows["malformed"]["recall"] == "1.00", rows["malformed"]["detail"]
    pngs = sorted((tmp_path / "out" / "faults").glob("*.png"))
    assert len(pngs) == 4
    for png in [*pngs, tmp_path / "out" / "summary.png"]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "| burst | pipe-burst |" in (tmp_path / "out" / "eval.md").read_text()


@pytest.mark.slow
@pytest.mark.e2e
def test_a_fault_the_rules_cannot_see_scores_below_one(tmp_path: Path) -> None:
    blind = "\n".join(line for line in CLUSTER.splitlines() if "pipe-burst" not in line
                      and "severity: critical, match: {org: acque}" not in line)  # fmt: skip
    done = _eval(tmp_path, blind, "--no-plots", "--broker", "amqtt")  # the fallback, too
    assert done.returncode == 0, done.stderr[-2000:]
    assert "embedded amqtt" in done.stdout
    rows = _rows(tmp_path / "out" / "eval.csv")
    assert float(rows["burst"]["recall"]) < 1.0
    assert rows["burst"]["handled by"] == "no rule (burst on flow_lpm) in this file"
    assert rows["spike"]["recall"] == "1.00"  # the rest is still seen
    assert not (tmp_path / "out" / "faults").exists()


@pytest.mark.slow
@pytest.mark.e2e
def test_eval_uses_the_configured_broker_and_influxdb(
    tmp_path: Path, mosquitto: MosquittoServer, influxd: InfluxServer, influx_db: str
) -> None:
    """With ECOCLUSTER_MQTT_URL and ECOCLUSTER_INFLUX_URL set, the readings go through that
    broker into that InfluxDB (a database of its own: `<influx_db>_eval`)."""
    eval_db = f"{influx_db}_eval"
    try:
        done = _eval(
            tmp_path,
            CLUSTER,
            "--no-plots",
            env={
                "ECOCLUSTER_MQTT_URL": mosquitto.url,
                "ECOCLUSTER_INFLUX_URL": influxd.url,
                "ECOCLUSTER_INFLUX_DB": influx_db,
            },
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert f"configured broker mqtt://127.0.0.1:{mosquitto.port}" in done.stdout
        assert f"InfluxDB, database '{eval_db}'" in done.stdout
        assert " 0 readings stored" not in done.stdout and "store refused" not in done.stdout
        answer = influxd.query("SELECT count(value) FROM flow_lpm", db=eval_db)
        (series,) = answer["results"][0]["series"]
        assert series["values"][0][1] >= 150  # 3 h of one flow meter at 1/min, minus none
        assert _rows(tmp_path / "out" / "eval.csv")["burst"]["recall"] == "1.00"
    finally:
        influxd.query(f'DROP DATABASE "{eval_db}"')
