"""Scale-out workers (issue 15, items 1 and 2): ingest and rules as several processes.

Partitioned ingest workers store every reading exactly once between them and resume from
their persistent sessions after a crash; MQTT 5 shared-subscription workers split one
subscription; rules workers read the broker themselves, a meter's rule state lives on one
of them, and the organisation/territory rules run on the one aggregation worker only.
The multi-process scenarios run `ecocluster run` as real subprocesses against the
harness's Mosquitto and influxd.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest

from ecocluster.core.partition import Partition, owner_of
from ecocluster.core.registry import Cluster, load_cluster
from ecocluster.core.settings import Settings, load_settings
from ecocluster.rules.broker_feed import feed_settings
from ecocluster.rules.partitioning import WorkerShare, is_aggregate_rule
from ecocluster.rules.stage import RulesStage
from ecocluster.stages import StagePlanError, check_partition, ingest_settings, plan
from tests.ecocluster.nodes import running_node
from tests.services import InfluxServer, MosquittoServer

N_SITES = 12


def _cluster_text(n_sites: int = N_SITES) -> str:
    sites = "\n".join(
        f"  - {{id: s{i:02d}, org: o{i % 2}, name: Site {i}, category: hotel,"
        f" lat: 44.3, lon: 10.2}}"
        for i in range(n_sites)
    )
    meters = "\n".join(
        f"  - {{id: em-01, site: s{i:02d}, quantities: [energy_kwh, power_w]}}"
        for i in range(n_sites)
    )
    return f"""\
territory: {{id: test, name: Test, timezone: Europe/Rome}}
organisations:
  - {{id: o0, name: Org zero, kind: public}}
  - {{id: o1, name: Org one, kind: private}}
sites:
{sites}
meters:
{meters}
rules:
  - {{name: site-overload, type: threshold, quantity: power_w, above: 60000,
     severity: critical}}
  - {{name: org-peak, type: threshold, quantity: power_w, scope: org, above: 500000,
     severity: warning}}
  - {{name: territory-peak, type: threshold, quantity: power_w, scope: territory,
     above: 100000, severity: critical}}
"""


@pytest.fixture
def cluster_path(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(_cluster_text())
    return path


@pytest.fixture
def cluster(cluster_path: Path) -> Cluster:
    return load_cluster(cluster_path)


def _settings(**values: Any) -> Settings:
    return load_settings({k: v for k, v in values.items() if v is not None})


def _site_of_each_worker(n: int = 2) -> list[str]:
    """One site owned by each of `n` workers (the hash decides which)."""
    found: dict[int, str] = {}
    for i in range(N_SITES):
        found.setdefault(owner_of(f"s{i:02d}", n), f"s{i:02d}")
    assert len(found) == n, "the test cluster must give every worker a site"
    return [found[k] for k in range(n)]


# -- shares: which sites and which rules -----------------------------------------------------


def test_partitions_split_the_sites_and_the_series_without_overlap(cluster: Cluster) -> None:
    shares = [WorkerShare(Partition(k, 3)) for k in range(3)]
    views = [share.rules_view(cluster) for share in shares]
    site_sets = [{s.id for s in view.sites} for view in views]
    assert all(site_sets), "every worker gets sites with 12 of them"
    assert set.union(*site_sets) == {s.id for s in cluster.sites}
    assert sum(len(s) for s in site_sets) == len(cluster.sites)  # disjoint
    assert sum(len(view.series) for view in views) == len(cluster.series)
    for view, sites in zip(views, site_sets, strict=True):
        assert {m.site for m in view.meters} == sites
        assert [r.name for r in view.rules] == ["site-overload"]  # no org/territory rules


def test_the_aggregation_worker_takes_every_site_and_only_the_aggregate_rules(
    cluster: Cluster,
) -> None:
    view = WorkerShare.parse("aggregate").rules_view(cluster)
    assert len(view.sites) == N_SITES and len(view.series) == len(cluster.series)
    assert [r.name for r in view.rules] == ["org-peak", "territory-peak"]
    assert [is_aggregate_rule(r) for r in cluster.rules] == [False, True, True]
    # Every rule is evaluated by exactly one kind of worker.
    whole = WorkerShare.parse(None)
    assert whole.rules_view(cluster) is cluster and WorkerShare.parse("0/1").whole
    for rule in cluster.rules:
        takers = [WorkerShare.parse("0/2").takes_rule(rule), view.rules.count(rule) == 1]
        assert takers.count(True) == 1, rule.name


def test_a_partitioned_view_keeps_the_line_numbers_of_its_rules(
    cluster: Cluster, cluster_path: Path
) -> None:
    view = WorkerShare.parse("aggregate").rules_view(cluster)
    where = view.locate(("rules", 1, "above"))
    assert where is not None and where.line == cluster.locate(("rules", 2, "above")).line  # type: ignore[union-attr]


def test_each_worker_has_its_own_session_and_files(cluster: Cluster, tmp_path: Path) -> None:
    base = _settings(mqtt_client_id="eco", data_dir=str(tmp_path), influx_url="http://127.0.0.1:1")
    names = set()
    for spec in ("0/2", "1/2"):
        settings = base.model_copy(update={"partition": spec})
        ingest = ingest_settings(settings, cluster)
        share = WorkerShare.parse(spec)
        assert ingest.ingest_sites == share.sites(cluster) and ingest.ingest_sites
        assert ingest.data_dir == tmp_path / share.suffix
        feed = feed_settings(settings, share.rules_view(cluster), share)
        assert feed.ingest_sites == ingest.ingest_sites and feed.ingest_share_group is None
        names |= {ingest.mqtt_client_id, feed.mqtt_client_id}
    assert names == {"eco-p0of2", "eco-p1of2", "eco-rules-feed-p0of2", "eco-rules-feed-p1of2"}
    assert ingest_settings(base, cluster) is base  # unpartitioned: nothing moves
    shared = _settings(mqtt_protocol="5", ingest_share_group="g", partition="aggregate")
    assert feed_settings(shared, cluster, WorkerShare.parse("aggregate")).ingest_share_group is None


def test_a_rules_worker_may_run_alone_and_impossible_partitions_are_refused() -> None:
    assert [s.name for s in plan(["rules"])] == ["rules"]
    influx = {"influx_url": "http://127.0.0.1:1"}
    check_partition(plan(["rules"]), _settings(partition="1/2"))
    check_partition(plan(["rules"]), _settings(partition="aggregate"))
    check_partition(plan(["ingest"]), _settings(partition="1/2", **influx))
    refused = [
        (["ingest"], {"partition": "aggregate", **influx}, "run it --only rules"),
        (["alerts"], {"partition": "0/2"}, "only the ingest and rules stages"),
        (["ingest"], {"partition": "0/2"}, "ECOCLUSTER_INFLUX_URL"),
        (
            ["ingest"],
            {"partition": "0/2", "mqtt_protocol": "5", "ingest_share_group": "g", **influx},
            "use one",
        ),
    ]
    for only, values, message in refused:
        with pytest.raises(StagePlanError, match=message):
            check_partition(plan(only), _settings(**values))
    with pytest.raises(ValueError, match="need 0 <= k < n"):
        _settings(partition="2/2")


def test_a_worker_without_sites_is_refused_rather_than_subscribing_to_all(
    cluster: Cluster,
) -> None:
    n = 40  # more workers than the 12 sites: some own none
    idle = next(k for k in range(n) if not WorkerShare(Partition(k, n)).sites(cluster))
    settings = _settings(partition=f"{idle}/{n}", influx_url="http://127.0.0.1:1")
    with pytest.raises(StagePlanError, match="owns none of the 12 sites"):
        check_partition(plan(["rules"]), settings, cluster)
    with pytest.raises(StagePlanError, match="run fewer workers"):
        ingest_settings(settings, cluster)
    share = WorkerShare.parse(settings.partition)
    with pytest.raises(ValueError, match="owns none"):
        feed_settings(settings, share.rules_view(cluster), share)


def test_a_partitioned_rules_worker_reloads_its_share_and_refuses_any_bad_rule(
    cluster_path: Path,
) -> None:
    share = WorkerShare.parse("1/2")
    stage = RulesStage(load_cluster(cluster_path), view=share.rules_view, worker=str(share))
    assert [k.spec.name for k in stage.engine.kernels] == ["site-overload"]
    assert stage.worker_info()["sites"] == share.sites(load_cluster(cluster_path))
    text = cluster_path.read_text()
    cluster_path.write_text(
        text
        + "  - {name: site-low, type: threshold, quantity: power_w, below: 1}\n"
        + "  - {name: org-low, type: threshold, quantity: power_w, scope: org, below: 1}\n"
    )
    assert stage.reload()
    assert [k.spec.name for k in stage.engine.kernels] == ["site-overload", "site-low"]
    # A mistake in a rule another worker runs is refused here too: one file, one verdict.
    cluster_path.write_text(
        text + "  - {name: org-bad, type: threshold, quantity: power_w, scope: org}\n"
    )
    assert not stage.reload() and stage.config_last_reload_successful == 0
    assert [k.spec.name for k in stage.engine.kernels] == ["site-overload", "site-low"]


# -- a rules worker in-process: fed by the broker, no store ---------------------------------


class _AlertWatcher:
    """A plain paho client on `{prefix}/_alerts/#` (an alert stage elsewhere)."""

    def __init__(self, port: int, prefix: str) -> None:
        self.alerts: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{prefix}/_alerts/#", qos=1)
        self.client.loop_start()
        assert subscribed.wait(10), "watcher never subscribed"

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.alerts.append({"topic": msg.topic, **orjson.loads(msg.payload)})

    def firing(self) -> list[dict[str, Any]]:
        with self.lock:
            return [a for a in self.alerts if a["state"] == "firing"]

    def wait_firing(self, count: int, timeout_s: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(self.firing()) < count:
            time.sleep(0.05)
        return self.firing()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _publish(
    port: int,
    items: list[tuple[str, bytes]],
    *,
    protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv311,
) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=protocol)
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in items]
        for info in infos:
            info.wait_for_publish(30)
    finally:
        client.disconnect()
        client.loop_stop()


def _power(prefix: str, site: str, watts: float, ts_ms: int) -> tuple[str, bytes]:
    return f"{prefix}/{site}/em-01/data", orjson.dumps({"ts": ts_ms, "m": {"power_w": watts}})


@pytest.mark.e2e
async def test_a_rules_only_node_reads_the_broker_and_opens_no_store(
    tmp_path: Path, cluster_path: Path, mosquitto: MosquittoServer, topic_prefix: str
) -> None:
    data = tmp_path / "data"
    settings = _settings(
        mqtt_url=mosquitto.url,
        mqtt_client_id=f"r-{topic_prefix}",
        topic_prefix=topic_prefix,
        data_dir=str(data),
        rules_tick_s=0.5,
    )
    watcher = _AlertWatcher(mosquitto.port, topic_prefix)
    try:
        async with running_node(load_cluster(cluster_path), settings, ["rules"]) as state:
            now = int(time.time() * 1000)
            breaches = [_power(topic_prefix, site, 72e3, now) for site in ("s03", "s04")]
            await asyncio.to_thread(_publish, mosquitto.port, breaches)
            fired = await asyncio.to_thread(watcher.wait_firing, 3, 15)
    finally:
        watcher.close()
    # Unpartitioned, it runs every rule: the site's overload and the territory sum.
    got = sorted((a["rule"], a["labels"].get("site", "")) for a in fired)
    assert got == [("site-overload", "s03"), ("site-overload", "s04"), ("territory-peak", "")]
    assert state.store is None and set(state.stages) == {"rules"}
    assert state.metrics.get_sample_value("ecocluster_rules_feed_readings_total") == 2.0
    assert sorted(p.name for p in data.iterdir()) == ["rules-state.json"]  # no store file


@pytest.mark.e2e
async def test_ingest_and_rules_in_one_partitioned_node_take_the_same_sites(
    tmp_path: Path,
    cluster_path: Path,
    mosquitto: MosquittoServer,
    influxd: InfluxServer,
    influx_db: str,
    topic_prefix: str,
) -> None:
    mine, theirs = _site_of_each_worker(2)
    settings = _settings(
        mqtt_url=mosquitto.url,
        mqtt_client_id=f"n-{topic_prefix}",
        topic_prefix=topic_prefix,
        data_dir=str(tmp_path / "data"),
        influx_url=influxd.url,
        influx_db=influx_db,
        ingest_flush_ms=50,
        partition="0/2",
    )
    watcher = _AlertWatcher(mosquitto.port, topic_prefix)
    try:
        async with running_node(load_cluster(cluster_path), settings, ["ingest", "rules"]) as state:
            now = int(time.time() * 1000)
            breaches = [_power(topic_prefix, site, 72e3, now) for site in (mine, theirs)]
            await asyncio.to_thread(_publish, mosquitto.port, breaches)
            fired = await asyncio.to_thread(watcher.wait_firing, 1, 15)
            await asyncio.sleep(1.0)  # time for a wrong second one
            fired = watcher.firing()
    finally:
        watcher.close()
    assert [(a["rule"], a["labels"]["site"]) for a in fired] == [("site-overload", mine)]
    assert _counts_by_site(influxd, influx_db) == {mine: 1}  # the other site is worker 1's
    assert state.engine is not None
    assert {k.site for k in state.engine.table.keys} == set(
        WorkerShare.parse("0/2").sites(state.cluster)
    )  # no series of other workers' sites crept into the engine


# -- subprocess workers -----------------------------------------------------------------------


class _Worker:
    """`python -m ecocluster run …` as a child process, its stderr collected."""

    def __init__(self, cluster_path: Path, cwd: Path, env: dict[str, str], *args: str) -> None:
        self.args = [
            sys.executable,
            "-m",
            "ecocluster",
            "run",
            "--config",
            str(cluster_path),
            *args,
        ]
        self.cwd, self.env = cwd, {**os.environ, **env}
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.args,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, predicate: Callable[[str], bool], timeout_s: float = 60.0) -> str:
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            lines = list(self.lines)
            for line in lines[seen:]:
                if predicate(line):
                    return line
            seen = len(lines)
            assert self.proc is not None
            if self.proc.poll() is not None and seen == len(self.lines):
                break
            time.sleep(0.05)
        raise AssertionError(f"not seen in {self.args[-3:]}:\n" + "\n".join(self.lines[-30:]))

    def wait_ready(self) -> None:
        self.wait_for(lambda line: "node ready" in line)

    def stop(self, *, kill: bool = False) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        code = self.proc.wait(30)
        if self.proc.stderr is not None:
            self._reader.join(5)
            self.proc.stderr.close()
        return code


@pytest.fixture
def workers() -> Iterator[list[_Worker]]:
    started: list[_Worker] = []
    yield started
    for worker in started:
        if worker.proc is not None and worker.proc.returncode is None:
            worker.stop(kill=True)


def _env(mosquitto: MosquittoServer, prefix: str, data: Path, **extra: str) -> dict[str, str]:
    return {
        "ECOCLUSTER_MQTT_URL": mosquitto.url,
        "ECOCLUSTER_TOPIC_PREFIX": prefix,
        "ECOCLUSTER_MQTT_CLIENT_ID": f"w-{prefix}",
        "ECOCLUSTER_DATA_DIR": str(data),
        "ECOCLUSTER_INGEST_FLUSH_MS": "50",
        "ECOCLUSTER_LOG_LEVEL": "INFO",
        **extra,
    }


def _round(prefix: str, first_ts: int, per_site: int) -> list[tuple[str, bytes]]:
    """`per_site` messages for every site, each with an energy and a power reading."""
    out = []
    for k in range(per_site):
        ts = first_ts + k * 1000
        for i in range(N_SITES):
            m = {"energy_kwh": 1000.0 + k * 0.1 + i, "power_w": 1000.0 + k}
            out.append((f"{prefix}/s{i:02d}/em-01/data", orjson.dumps({"ts": ts, "m": m})))
    return out


def _counts_by_site(influxd: InfluxServer, db: str, since_ms: int = 0) -> dict[str, int]:
    answer = influxd.query(
        f"SELECT count(value) FROM power_w WHERE time >= {since_ms}ms GROUP BY site", db
    )
    out: dict[str, int] = {}
    for series in answer.get("results", [{}])[0].get("series", []) or []:
        out[series["tags"]["site"]] = int(series["values"][0][1])
    return out


def _wait_counts(
    influxd: InfluxServer, db: str, want: dict[str, int], since_ms: int, timeout_s: float = 30
) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    got: dict[str, int] = {}
    while time.monotonic() < deadline:
        got = _counts_by_site(influxd, db, since_ms)
        if all(got.get(site, 0) >= n for site, n in want.items()):
            break
        time.sleep(0.2)
    return got


@pytest.mark.e2e
@pytest.mark.slow
def test_two_partitioned_ingest_workers_store_each_reading_once_and_resume_after_a_crash(
    tmp_path: Path,
    cluster_path: Path,
    mosquitto: MosquittoServer,
    influxd: InfluxServer,
    influx_db: str,
    topic_prefix: str,
    workers: list[_Worker],
) -> None:
    env = _env(
        mosquitto,
        topic_prefix,
        tmp_path / "data",  # one data dir for both: their files must not collide
        ECOCLUSTER_INFLUX_URL=influxd.url,
        ECOCLUSTER_INFLUX_DB=influx_db,
    )
    for k in range(2):
        workers.append(
            _Worker(
                cluster_path,
                tmp_path,
                {**env, "ECOCLUSTER_PARTITION": f"{k}/2"},
                "--only",
                "ingest",
            )
        )
    for worker in workers:
        worker.wait_ready()
    mine = {
        k: [f"s{i:02d}" for i in range(N_SITES) if owner_of(f"s{i:02d}", 2) == k] for k in range(2)
    }
    t0 = int(time.time() * 1000) - 600_000
    per_site = 40
    _publish(mosquitto.port, _round(topic_prefix, t0, per_site))
    got = _wait_counts(influxd, influx_db, {f"s{i:02d}": per_site for i in range(N_SITES)}, t0)
    assert got == {f"s{i:02d}": per_site for i in range(N_SITES)}

    # Worker 1 crashes; only its sites wait (in its persistent session) until it is back.
    assert workers[1].stop(kill=True) == -signal.SIGKILL
    t1 = t0 + per_site * 1000
    _publish(mosquitto.port, _round(topic_prefix, t1, per_site))
    got = _wait_counts(influxd, influx_db, dict.fromkeys(mine[0], per_site), t1)
    time.sleep(1.0)  # worker 0 had time to store anything it (wrongly) held of worker 1's
    got = _counts_by_site(influxd, influx_db, t1)
    assert got == dict.fromkeys(mine[0], per_site), "worker 0 stored only its own sites"
    workers[1].start()
    workers[1].wait_ready()
    got = _wait_counts(influxd, influx_db, dict.fromkeys(mine[1], per_site), t1)
    time.sleep(0.5)
    got = _counts_by_site(influxd, influx_db, t0)
    assert got == {f"s{i:02d}": 2 * per_site for i in range(N_SITES)}, "nothing lost"
    total = influxd.query(f"SELECT count(value) FROM energy_kwh WHERE time >= {t0}ms", influx_db)
    assert total["results"][0]["series"][0]["values"][0][1] == 2 * per_site * N_SITES
    for worker in workers:
        assert worker.stop() == 0
    # Each worker kept its own files in the shared data dir, for its own sites only.
    for k in range(2):
        saved = orjson.loads((tmp_path / "data" / f"p{k}of2" / "registers.json").read_bytes())
        sites = {key.split("/")[0] for key in saved["series"]}
        assert sites == set(mine[k]), (k, sites)
    assert not any("Traceback" in line for w in workers for line in w.lines)


@pytest.mark.e2e
@pytest.mark.slow
def test_mqtt5_shared_subscription_workers_split_the_stream_and_store_each_reading_once(
    tmp_path: Path,
    cluster_path: Path,
    mosquitto: MosquittoServer,
    influxd: InfluxServer,
    influx_db: str,
    topic_prefix: str,
    workers: list[_Worker],
) -> None:
    for k in range(2):
        env = _env(
            mosquitto,
            topic_prefix,
            tmp_path / f"data{k}",  # share-group workers each need their own data dir
            ECOCLUSTER_INFLUX_URL=influxd.url,
            ECOCLUSTER_INFLUX_DB=influx_db,
            ECOCLUSTER_MQTT_PROTOCOL="5",
            ECOCLUSTER_INGEST_SHARE_GROUP=f"g{topic_prefix}",
            ECOCLUSTER_MQTT_CLIENT_ID=f"w{k}-{topic_prefix}",
        )
        workers.append(_Worker(cluster_path, tmp_path, env, "--only", "ingest"))
    for worker in workers:
        worker.wait_ready()
    t0 = int(time.time() * 1000) - 600_000
    per_site = 50
    _publish(mosquitto.port, _round(topic_prefix, t0, per_site), protocol=mqtt.MQTTv5)
    want = {f"s{i:02d}": per_site for i in range(N_SITES)}
    _wait_counts(influxd, influx_db, want, t0)
    time.sleep(0.5)
    assert _counts_by_site(influxd, influx_db, t0) == want
    for worker in workers:
        assert worker.stop() == 0
    # Both took part: the broker handed each worker some of the messages.
    for k in range(2):
        assert (tmp_path / f"data{k}" / "registers.json").exists(), workers[k].lines[-10:]


def _snapshot(data: Path, name: str) -> dict[str, Any]:
    snapshot: dict[str, Any] = orjson.loads((data / name).read_bytes())
    return snapshot


@pytest.mark.e2e
@pytest.mark.slow
def test_rules_workers_fire_each_breach_once_from_its_owner_and_resume_after_a_crash(
    tmp_path: Path,
    cluster_path: Path,
    mosquitto: MosquittoServer,
    topic_prefix: str,
    workers: list[_Worker],
) -> None:
    data = tmp_path / "data"  # one data dir for the three: per-worker snapshots
    env = _env(mosquitto, topic_prefix, data, ECOCLUSTER_RULES_TICK_S="0.3")
    watcher = _AlertWatcher(mosquitto.port, topic_prefix)
    try:
        for share in ("0/2", "1/2", "aggregate"):
            workers.append(
                _Worker(cluster_path, tmp_path, env, "--only", "rules", "--partition", share)
            )
        for worker in workers:
            worker.wait_ready()
        # A k/n worker says in one line that the aggregate rules are not its own.
        line = workers[0].wait_for(lambda text: "NOT evaluated here" in text)
        assert "org-peak, territory-peak" in line and "--partition aggregate" in line
        site_a, site_b = _site_of_each_worker(2)
        quiet = next(f"s{i:02d}" for i in range(N_SITES) if f"s{i:02d}" not in (site_a, site_b))
        now = int(time.time() * 1000)
        _publish(
            mosquitto.port,
            [_power(topic_prefix, s, 72e3, now) for s in (site_a, site_b)]
            + [_power(topic_prefix, quiet, 10.0, now)],
        )
        fired = watcher.wait_firing(3, 20)
        time.sleep(1.5)  # five more ticks on every worker: nothing fires twice
        fired = watcher.firing()
        # Worker 1 crashes; a breach on another of its sites waits in its session.
        assert workers[1].stop(kill=True) == -signal.SIGKILL
        site_c = next(
            f"s{i:02d}"
            for i in range(N_SITES)
            if owner_of(f"s{i:02d}", 2) == 1 and f"s{i:02d}" != site_b
        )
        _publish(mosquitto.port, [_power(topic_prefix, site_c, 80e3, int(time.time() * 1000))])
        workers[1].start()
        workers[1].wait_ready()
        late = watcher.wait_firing(4, 20)[len(fired) :]
        time.sleep(1.0)
        late = watcher.firing()[len(fired) :]
    finally:
        codes = [worker.stop() for worker in workers]
        watcher.close()
    assert codes == [0, 0, 0], [w.lines[-5:] for w in workers]
    assert [(a["rule"], a["labels"]["site"], a["value"]) for a in late] == [
        ("site-overload", site_c, 80e3)
    ], late
    # Six clients (three feeds, three publishers) under one base client id: none took
    # another's session.
    lines = [line for worker in workers for line in worker.lines]
    assert not [line for line in lines if "same client id" in line or "lost the broker" in line]
    got = sorted((a["rule"], a["labels"].get("site", "")) for a in fired)
    assert got == sorted(
        [("site-overload", site_a), ("site-overload", site_b), ("territory-peak", "")]
    ), fired
    territory = next(a for a in fired if a["rule"] == "territory-peak")
    assert territory["value"] == 72e3 + 72e3 + 10.0  # the sum over both workers' sites

    # One owner per meter's state: the snapshots list disjoint sites covering all of them,
    # and each firing state is in its owner's snapshot only.
    snaps = {s: _snapshot(data, f"rules-state-{s}.json") for s in ("p0of2", "p1of2")}
    agg = _snapshot(data, "rules-state-aggregate.json")
    sites = [set(snap["worker"]["sites"]) for snap in snaps.values()]
    assert not sites[0] & sites[1] and sites[0] | sites[1] == {f"s{i:02d}" for i in range(N_SITES)}
    assert site_a in sites[0] and site_b in sites[1]
    assert sum(snap["worker"]["series"] for snap in snaps.values()) == 2 * N_SITES
    # (worker 1's state of site_b died with it: SIGKILL before any snapshot; no repeat)
    for key, site in (("p0of2", site_a), ("p1of2", site_c)):
        firing = snaps[key]["rules"]["site-overload"]["targets"]
        assert list(firing) == [f"{site}/em-01/power_w"], firing
        assert set(snaps[key]["rules"]) == {"site-overload"}
    assert set(agg["rules"]) == {"org-peak", "territory-peak"}
    assert agg["worker"]["share"] == "aggregate" and len(agg["worker"]["sites"]) == N_SITES
