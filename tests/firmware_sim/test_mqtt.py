"""The simulator against a real Mosquitto: what arrives is exactly what the generator
yields, faults show in the payloads, last wills fire, shutdown is clean."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from ecocluster.core.registry import Cluster
from ecocluster.core.types import QUANTITIES
from ecocluster.sim import (
    Encoder,
    SimConfig,
    Simulation,
    build_plan,
    generate,
    ground_truth,
    load_scenario,
)
from tests.services import MosquittoServer

from .conftest import local
from .mqtt_capture import Capture, statuses

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def capture(mosquitto: MosquittoServer, topic_prefix: str):  # type: ignore[no-untyped-def]
    cap = Capture(mosquitto.port, f"{topic_prefix}/#")
    yield cap
    cap.close()


@pytest.mark.slow
def test_backfill_delivers_exactly_the_generated_messages_with_every_fault(
    cluster: Cluster,
    mosquitto: MosquittoServer,
    topic_prefix: str,
    capture: Capture,
    tmp_path: Path,
) -> None:
    scenario = load_scenario("stress-mix")
    start, end = scenario.start, scenario.start + scenario.duration  # type: ignore[operator]
    plan = build_plan(cluster, seed=5)
    truth_file = tmp_path / "truth.jsonl"
    cfg = SimConfig(
        broker=mosquitto.url, prefix=topic_prefix, qos=1, start=start, end=end,
        scenario=scenario, truth_path=truth_file,
    )  # fmt: skip
    stats = Simulation(plan, cfg).run()

    encoder = Encoder(plan, prefix=topic_prefix)
    expected = Counter(
        (m.topic, m.payload) for m in (encoder.status(i, True) for i in range(len(plan.meters)))
    )
    for batch in generate(plan, start, end, scenario=scenario):
        expected.update((m.topic, m.payload) for m in encoder.messages(batch))
    expected.update(
        (m.topic, m.payload) for m in (encoder.status(i, False) for i in range(len(plan.meters)))
    )
    got = capture.wait_for(lambda ms: len(ms) >= sum(expected.values()), timeout_s=60)
    assert Counter((m.topic, m.payload) for m in got) == expected
    assert stats.messages + 2 * len(plan.meters) == sum(expected.values())

    records = [json.loads(line) for line in truth_file.read_text().splitlines()]
    assert records == ground_truth(plan, start, seed=5, scenario=scenario)
    by_kind = {r["kind"]: r for r in records}

    def readings(site: str, meter: str) -> list[dict]:
        topic = f"{topic_prefix}/{site}/{meter}/data"
        out = []
        for m in got:
            if m.topic == topic:
                try:
                    body = orjson.loads(m.payload)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(body, dict) and isinstance(body.get("ts"), int) and "m" in body:
                    out.append(body)
        return out

    def inside(rec: dict, body: dict) -> bool:
        return rec["start_ms"] <= body["ts"] < rec["end_ms"]

    leak = by_kind["leak"]
    assert all(
        b["m"]["flow_lpm"] >= 5 for b in readings(leak["site"], leak["meter"]) if inside(leak, b)
    )
    drop = by_kind["dropout"]
    assert statuses(got, drop["site"], drop["meter"], topic_prefix) == [
        "online",
        "offline",
        "online",
        "offline",
    ]
    assert not any(inside(drop, b) for b in readings(drop["site"], drop["meter"]))
    reset = by_kind["counter_reset"]
    after = [b for b in readings(reset["site"], reset["meter"]) if b["ts"] >= reset["start_ms"]]
    assert after[0]["m"]["energy_kwh"] == 0.0
    skew = by_kind["clock_skew"]
    stamps = [b["ts"] for b in readings(skew["site"], skew["meter"])]
    jumps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(jumps) < 0 and max(jumps) > 3_600_000  # forward at the start, back at the end
    bad = by_kind["malformed"]
    bad_topic = f"{topic_prefix}/{bad['site']}/{bad['meter']}/data"
    rejected = [m for m in got if m.topic == bad_topic and not _native_ok(m.payload)]
    assert len(rejected) == 12
    hostile_topics = {
        m.topic for m in got if m.topic.count("/") != 3 or " " in m.topic or '"' in m.topic
    }
    assert len(hostile_topics) >= 3
    spike, over, burst, stuck, episode = (
        by_kind[k] for k in ("spike", "overload", "burst", "stuck", "air_episode")
    )
    near = [
        b
        for b in readings(spike["site"], spike["meter"])
        if abs(b["ts"] - spike["start_ms"]) < 600_000
    ]
    peak = max(b["m"]["power_w"] for b in near if inside(spike, b))
    assert peak > 3.5 * sorted(b["m"]["power_w"] for b in near)[len(near) // 2]
    assert all(
        b["m"]["power_w"] > max(60_000, 0.97 * over["params"]["level_w"])
        for b in readings(over["site"], over["meter"])
        if inside(over, b)
    )
    assert all(
        b["m"]["flow_lpm"] > 450
        for b in readings(burst["site"], burst["meter"])
        if inside(burst, b)
    )
    assert (
        len(
            {
                b["m"]["pm10_ugm3"]
                for b in readings(stuck["site"], stuck["meter"])
                if inside(stuck, b)
            }
        )
        == 1
    )
    assert (
        max(
            b["m"]["no2_ugm3"]
            for b in readings(episode["site"], episode["meter"])
            if inside(episode, b)
        )
        > 200
    )
    repl = by_kind["meter_replacement"]
    after = [b for b in readings(repl["site"], repl["meter"]) if b["ts"] >= repl["start_ms"]]
    assert after[0]["ts"] >= repl["end_ms"] and after[0]["m"]["water_m3"] == 0.5


@pytest.mark.parametrize(("qos", "protocol"), [(0, "3.1.1"), (0, "5"), (1, "5")])
def test_backfill_fast_paths_deliver_everything(
    cluster: Cluster,
    mosquitto: MosquittoServer,
    topic_prefix: str,
    capture: Capture,
    qos: int,
    protocol: str,
) -> None:
    """Backfills write ready-made PUBLISH packets on paho's socket (own packet ids at
    QoS 1): every message must arrive intact, over MQTT 3.1.1 and 5."""
    plan = build_plan(
        cluster, seed=9, meters_only=["unione-sede", "ps-bismantova", "aq-castelnovo"]
    )
    start = local(2026, 2, 9)
    end = local(2026, 2, 9, 12)
    cfg = SimConfig(
        broker=mosquitto.url, prefix=topic_prefix, qos=qos, protocol=protocol, start=start, end=end
    )  # type: ignore[arg-type]
    stats = Simulation(plan, cfg).run()
    encoder = Encoder(plan, prefix=topic_prefix)
    expected = Counter(
        (m.topic, m.payload) for b in generate(plan, start, end) for m in encoder.messages(b)
    )
    got = capture.wait_for(
        lambda ms: sum(m.topic.endswith("/data") for m in ms) >= sum(expected.values()), 30
    )
    assert Counter((m.topic, m.payload) for m in got if m.topic.endswith("/data")) == expected
    assert stats.messages == sum(expected.values()) > 3000


def _native_ok(payload: bytes) -> bool:
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return False
    return (
        isinstance(body, dict)
        and isinstance(body.get("ts"), int)
        and 0 < body["ts"] < 2_000_000_000_000
        and isinstance(body.get("m"), dict)
        and all(isinstance(v, float) for v in body["m"].values())
        and set(body["m"]) <= set(QUANTITIES)
        and len(payload) < 65536
    )


def test_cli_backfill_in_senml_matches_the_generator(
    cluster: Cluster,
    mosquitto: MosquittoServer,
    topic_prefix: str,
    capture: Capture,
    example_cluster_path: Path,
) -> None:
    cmd = [
        sys.executable, "-m", "ecocluster.sim", "--config", str(example_cluster_path),
        "--broker", mosquitto.url, "--prefix", topic_prefix, "--format", "senml", "--seed", "3",
        "--meters-only", "aq-castelnovo,ps-busana/wm-01", "--from", "2026-01-12T06:00",
        "--to", "2026-01-12T09:00", "--qos", "1",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "sent 216 messages" in done.stdout  # 3 h: 36 every 5 min (air) + 180 every minute
    got = capture.wait_quiet()
    packs = [orjson.loads(m.payload) for m in got if m.topic.endswith("/senml")]
    assert {m.topic for m in got if m.topic.endswith("/status")} == {
        f"{topic_prefix}/aq-castelnovo/aq-01/status",
        f"{topic_prefix}/ps-busana/wm-01/status",
    }
    plan = build_plan(cluster, seed=3, meters_only=["aq-castelnovo", "ps-busana/wm-01"])
    expected = {}
    for batch in generate(plan, local(2026, 1, 12, 6), local(2026, 1, 12, 9)):
        for site, meter, q, ts, v in batch.rows():
            expected[(f"urn:dev:eco:{site}:{meter}:", ts, q)] = v
    seen = 0
    names = {
        "pm10": "pm10_ugm3",
        "no2": "no2_ugm3",
        "flow": "flow_lpm",
        "water": "water_m3",
        "o3": "o3_ugm3",
        "pm25": "pm25_ugm3",
        "so2": "so2_ugm3",
        "co": "co_mgm3",
        "temp": "temp_c",
        "rh": "rh_pct",
    }
    for pack in packs:
        bn, bt = pack[0]["bn"], pack[0]["bt"]
        for rec in pack:
            value = rec["v"] * 60 if rec["u"] == "l/s" else rec["v"]
            assert value == pytest.approx(
                expected[(bn, round(bt * 1000), names[rec["n"]])], abs=1e-9
            )
            seen += 1
    assert seen == len(expected) and seen > 100


def _spawn_per_meter(
    url: str, prefix: str, cluster_path: Path, *extra: str
) -> subprocess.Popen[str]:
    cmd = [
        sys.executable, "-m", "ecocluster.sim", "--config", str(cluster_path), "--broker", url,
        "--prefix", prefix, "--mode", "per-meter", "--meters-only", "parco-sede",
        "--interval", "1s", *extra,
    ]  # fmt: skip
    return subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


PARCO_SEDE = ("em-01", "wm-01", "iaq-01", "iaq-02")


def _all_online_with_data(prefix: str):  # type: ignore[no-untyped-def]
    def check(ms: list) -> bool:
        return all(
            statuses(ms, "parco-sede", m, prefix)[-1:] == ["online"]
            and any(x.topic == f"{prefix}/parco-sede/{m}/data" for x in ms)
            for m in PARCO_SEDE
        )

    return check


def test_killed_devices_go_offline_by_their_last_will(
    mosquitto: MosquittoServer, topic_prefix: str, capture: Capture, example_cluster_path: Path
) -> None:
    proc = _spawn_per_meter(mosquitto.url, topic_prefix, example_cluster_path)
    try:
        capture.wait_for(_all_online_with_data(topic_prefix), timeout_s=30)
        os.kill(proc.pid, signal.SIGKILL)  # no chance to say goodbye: only the wills speak
        proc.communicate(timeout=10)
        got = capture.wait_for(
            lambda ms: all(
                statuses(ms, "parco-sede", m, topic_prefix)[-1:] == ["offline"] for m in PARCO_SEDE
            ),
            timeout_s=10,
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # each device's own client id connected; its data carried real-time timestamps
    body = orjson.loads(next(m.payload for m in got if m.topic.endswith("/em-01/data")))
    assert abs(body["ts"] - time.time() * 1000) < 60_000
    assert (
        late_status_is_retained(mosquitto.port, f"{topic_prefix}/parco-sede/em-01/status")
        == b"offline"
    )


def late_status_is_retained(port: int, topic: str) -> bytes:
    late = Capture(port, topic)
    try:
        msgs = late.wait_for(lambda ms: len(ms) >= 1, timeout_s=5)
        assert msgs[0].retain
        return msgs[0].payload
    finally:
        late.close()


def test_sigterm_stops_cleanly_and_devices_say_offline(
    mosquitto: MosquittoServer, topic_prefix: str, capture: Capture, example_cluster_path: Path
) -> None:
    proc = _spawn_per_meter(mosquitto.url, topic_prefix, example_cluster_path)
    try:
        capture.wait_for(_all_online_with_data(topic_prefix), timeout_s=30)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "sent " in out
    got = capture.wait_quiet()
    for m in PARCO_SEDE:
        assert statuses(got, "parco-sede", m, topic_prefix)[-1] == "offline"


def test_dropout_in_per_meter_mode_fires_the_will_then_reconnects(
    cluster: Cluster,
    mosquitto: MosquittoServer,
    topic_prefix: str,
    capture: Capture,
    tmp_path: Path,
) -> None:
    scenario_file = tmp_path / "drop.yaml"
    scenario_file.write_text(
        "name: drop\nfaults:\n  - {kind: dropout, site: parco-sede, meter: em-01, at: 40s, duration: 60s}\n"
    )
    plan = build_plan(cluster, seed=1, meters_only=["parco-sede"], intervals={"*": 1000})
    cfg = SimConfig(
        broker=mosquitto.url, prefix=topic_prefix, mode="per-meter", speed=40,
        scenario=load_scenario(scenario_file), duration_s=4.0,
    )  # fmt: skip
    sim = Simulation(plan, cfg)
    stats = sim.run()
    got = capture.wait_quiet()
    assert statuses(got, "parco-sede", "em-01", topic_prefix) == [
        "online",
        "offline",
        "online",
        "offline",
    ]
    assert statuses(got, "parco-sede", "wm-01", topic_prefix) == ["online", "offline"]
    t0 = stats.sim_start_ms
    em = [orjson.loads(m.payload)["ts"] - t0 for m in got if m.topic.endswith("/em-01/data")]
    assert em and not any(40_000 <= t < 100_000 for t in em)
    assert any(t >= 100_000 for t in em) and any(t < 40_000 for t in em)
    assert stats.lag_percentiles()["p99"] < 0.5


async def test_run_async_over_mqtt5_stops_on_cancel(
    cluster: Cluster, mosquitto: MosquittoServer, topic_prefix: str, capture: Capture
) -> None:
    plan = build_plan(cluster, seed=2, meters_only=["ps-busana", "aq-busana"])
    sim = Simulation(
        plan, SimConfig(broker=mosquitto.url, prefix=topic_prefix, speed=120, protocol="5")
    )
    task = asyncio.create_task(sim.run_async())
    await asyncio.to_thread(
        capture.wait_for, lambda ms: sum(m.topic.endswith("/data") for m in ms) >= 5
    )
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    got = await asyncio.to_thread(
        capture.wait_for,
        lambda ms: all(
            statuses(ms, s, m, topic_prefix)[-1:] == ["offline"]
            for s, m in [("ps-busana", "wm-01"), ("aq-busana", "aq-01")]
        ),
        10,
    )
    stamps = [orjson.loads(m.payload)["ts"] for m in got if m.topic.endswith("/data")]
    assert max(stamps) < time.time() * 1000  # accelerated runs replay the past, never the future


def test_unreachable_broker_is_a_clear_error(cluster: Cluster) -> None:
    from ecocluster.sim.shared import MqttConnectError
    from tests.services import free_port

    plan = build_plan(cluster, meters_only=["parco-sede"])
    sim = Simulation(plan, SimConfig(broker=f"mqtt://127.0.0.1:{free_port()}", duration_s=1))
    with pytest.raises(MqttConnectError, match="cannot reach broker"):
        sim.run()


CREDENTIALED_CLUSTER = """
territory: {id: t, name: "Test", timezone: Europe/Rome}
organisations:
  - {id: o, name: "Org", kind: public}
sites:
  - {id: s1, org: o, name: "Site", category: office, lat: 44.3, lon: 10.3}
meters:
  - {id: em-01, site: s1, quantities: [energy_kwh, power_w], mqtt_username: dev-em, mqtt_password: pw-em}
  - {id: wm-01, site: s1, quantities: [water_m3, flow_lpm], mqtt_username: dev-wm, mqtt_password: pw-wm}
"""


def test_per_meter_devices_use_their_own_credentials(tmp_path: Path) -> None:
    from ecocluster.core.registry import load_cluster
    from ecocluster.sim.shared import MqttConnectError

    passwords = tmp_path / "passwd"
    for user, password in (("dev-em", "pw-em"), ("dev-wm", "pw-wm"), ("reader", "r")):
        flags = ["-b", "-c"] if not passwords.exists() else ["-b"]
        subprocess.run(["mosquitto_passwd", *flags, str(passwords), user, password], check=True)
    # Mosquitto started as root drops to its own user, who must be able to read the file
    for path in (tmp_path, *tmp_path.parents[:2]):
        path.chmod(0o755)
    passwords.chmod(0o644)
    (tmp_path / "cluster.yaml").write_text(CREDENTIALED_CLUSTER)
    cluster = load_cluster(tmp_path / "cluster.yaml")
    broker = MosquittoServer(tmp_path / "mq", password_file=passwords)
    broker.start()
    try:
        reader = Capture(broker.port, "eco/#", username=("reader", "r"))
        plan = build_plan(cluster, intervals={"*": 1000})
        cfg = SimConfig(broker=broker.url, mode="per-meter", speed=30, duration_s=1.5)
        Simulation(plan, cfg).run()
        got = reader.wait_quiet()
        reader.close()
        assert statuses(got, "s1", "em-01", "eco") == ["online", "offline"]
        assert sum(m.topic == "eco/s1/wm-01/data" for m in got) >= 30
        (tmp_path / "cluster.yaml").write_text(CREDENTIALED_CLUSTER.replace("pw-wm", "wrong"))
        bad = build_plan(load_cluster(tmp_path / "cluster.yaml"))
        with pytest.raises(MqttConnectError, match=r"refused 1 device\(s\), e\.g\. s1/wm-01"):
            Simulation(bad, SimConfig(broker=broker.url, mode="per-meter", duration_s=1)).run()
    finally:
        broker.stop()
