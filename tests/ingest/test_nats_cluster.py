"""A real broker cluster (issue 15 #3): three Debian nats-server nodes, one JetStream
cluster on loopback, an MQTT 3.1.1 listener on each node.

First the fixture is held to what it claims (a retained message and a persistent session's
queued QoS 1 messages are replicated: they survive the SIGKILL of the node they were
published on and are served by another node). Then the scale-out scenario: readings are
published at QoS 1 to node 0, two ingest workers partitioned by site take them from nodes
1 and 2 with persistent sessions, node 1 is SIGKILLed mid-stream and restarted on the same
ports and store, and every reading is in the real influxd exactly once, each worker having
stored only its own sites.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import pytest

from ecocluster.core.partition import Partition, sites_of_partition
from ecocluster.core.registry import Cluster, load_cluster
from ecocluster.core.settings import load_settings
from ecocluster.ingest.stage import IngestStage
from ecocluster.stages import ingest_settings, worker_share
from tests.ingest.conftest import running, wait_until
from tests.services import InfluxServer
from tests.services_nats import NatsCluster

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SITES = [f"site-{i:02d}" for i in range(6)]
PER_SITE = 500  # readings per site: N = 3,000 at QoS 1


def _cluster_yaml() -> str:
    sites = "\n".join(
        f"  - {{id: {s}, org: o1, name: Site {s}, category: hotel, lat: 44.3, lon: 10.2}}"
        for s in SITES
    )
    meters = "\n".join(f"  - {{id: em-{s[-2:]}, site: {s}, quantities: [power_w]}}" for s in SITES)
    return (
        "territory: {id: t, name: Test, timezone: Europe/Rome}\n"
        "organisations:\n  - {id: o1, name: Org one, kind: public}\n"
        f"sites:\n{sites}\nmeters:\n{meters}\n"
    )


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    cluster = NatsCluster(tmp_path / "nats")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


class Client:
    """A blocking paho MQTT 3.1.1 client on one node that records what it receives."""

    def __init__(self, port: int, client_id: str | None = None, *, clean: bool = True) -> None:
        self.messages: list[paho.MQTTMessage] = []
        self.session_present: bool | None = None
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"t-{uuid.uuid4().hex[:8]}",
            clean_session=clean,
            protocol=paho.MQTTv311,
        )
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.on_message = lambda _c, _u, msg: self.messages.append(msg)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(15):
            raise AssertionError(f"no CONNACK from 127.0.0.1:{port}")

    def _on_connect(self, _c: object, _u: object, flags: object, rc: object, _p: object) -> None:
        self.session_present = bool(getattr(flags, "session_present", False))
        if not getattr(rc, "is_failure", True):
            self._connected.set()

    def subscribe(self, topic: str) -> None:
        self._subscribed.clear()
        self.client.subscribe(topic, qos=1)
        assert self._subscribed.wait(15), f"no SUBACK for {topic}"

    def publish(self, topic: str, payloads: list[bytes], *, retain: bool = False) -> None:
        infos = [self.client.publish(topic, p, qos=1, retain=retain) for p in payloads]
        for info in infos:
            info.wait_for_publish(30)
            assert info.is_published(), "a QoS 1 publish was never acknowledged"

    def wait_for(self, count: int, timeout_s: float = 15.0) -> list[bytes]:
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return [m.payload for m in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_retained_message_is_replicated_to_every_node(nats_cluster: NatsCluster) -> None:
    """Published on node 0, served by node 2; then node 0 dies and node 1 restarts: node 1
    reloads it from the replicated stream, with the node it was published on still dead."""
    a, b, c = nats_cluster.mqtt_ports
    topic = f"eco/r{uuid.uuid4().hex[:6]}/em-01/status"
    pub = Client(a)
    pub.publish(topic, [b"online"], retain=True)
    pub.close()

    def retained_on(port: int) -> list[bytes]:
        # each node follows the retained stream on its own; a QoS 1 subscription waits for
        # its JetStream consumer, which waits for a stream leader after a node's death
        deadline = time.monotonic() + 30
        while True:
            sub = Client(port)
            sub.subscribe(topic)
            got = sub.wait_for(1, 2.0)
            sub.close()
            if got or time.monotonic() > deadline:
                return got

    assert retained_on(c) == [b"online"], _logs(nats_cluster)
    nats_cluster.kill(0)  # the node it was published on
    nats_cluster.kill(1)
    nats_cluster.start_node(1)  # starts empty-handed: only the stream has the message
    assert retained_on(b) == [b"online"], _logs(nats_cluster)


def _logs(cluster: NatsCluster) -> str:
    """The nodes' warnings and errors, for a failure message."""
    out = []
    for node in cluster.nodes:
        lines = node.log_path.read_text(errors="replace").splitlines()
        out += [f"{node.server_name}: {line}" for line in lines if "[INF]" not in line][-15:]
    return "\n".join(out)


def test_a_queued_qos1_message_survives_the_node_it_was_published_on(
    nats_cluster: NatsCluster,
) -> None:
    """A persistent session made on node 2 gets messages published on node 0 while it is
    offline; node 0 dies (SIGKILL); the session is resumed on node 1 and gets them all."""
    a, b, c = nats_cluster.mqtt_ports
    topic = f"eco/q{uuid.uuid4().hex[:6]}/em-01/data"
    keeper = f"keeper-{uuid.uuid4().hex[:6]}"
    sub = Client(c, keeper, clean=False)
    sub.subscribe(topic)
    sub.close()
    payloads = [f"m{i}".encode() for i in range(50)]
    pub = Client(a)
    pub.publish(topic, payloads)  # every one acknowledged by node 0
    nats_cluster.kill(0)
    resumed = Client(b, keeper, clean=False)
    try:
        assert resumed.session_present  # the session was replicated, not recreated
        got = resumed.wait_for(len(payloads), 20)
        time.sleep(0.5)  # nothing more arrives
        assert sorted(resumed.wait_for(0, 0)) == sorted(payloads)
        assert len(got) == len(payloads)
    finally:
        resumed.close()
        with contextlib.suppress(Exception):
            pub.client.loop_stop()


# -- the scale-out scenario ------------------------------------------------------------------
class PacedPublisher(threading.Thread):
    """The field: QoS 1 readings to one node at a steady pace, paho resending anything
    unacknowledged if the connection drops (persistent session)."""

    def __init__(self, port: int, items: list[tuple[str, bytes]], per_s: float) -> None:
        super().__init__(daemon=True)
        self.items, self.per_s = items, per_s
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=f"field-{uuid.uuid4().hex[:6]}",
            clean_session=False,
            protocol=paho.MQTTv311,
        )
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.2, 2)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            infos = []
            for i, (topic, payload) in enumerate(self.items):
                infos.append(self.client.publish(topic, payload, qos=1))
                self.sent = i + 1
                time.sleep(1 / self.per_s)  # never catches up in a burst: a steady stream
            for info in infos:
                info.wait_for_publish(60)
                if not info.is_published():
                    raise AssertionError("a reading was never acknowledged by the broker")
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.client.disconnect()
            self.client.loop_stop()


def _readings(prefix: str, t0: int) -> list[tuple[str, bytes]]:
    items = []
    for i in range(PER_SITE):
        for s in SITES:
            payload = {"ts": t0 + i * 1000, "m": {"power_w": float(i * 10 + int(s[-2:]))}}
            items.append((f"{prefix}/{s}/em-{s[-2:]}/data", orjson.dumps(payload)))
    return items


def _stored(influxd: InfluxServer, db: str) -> list[tuple[str, str, int, float]]:
    doc = influxd.query('SELECT "value" FROM "power_w" GROUP BY "site", "meter"', db=db)
    rows = []
    for series in doc["results"][0].get("series") or []:
        tags = series["tags"]
        rows += [(tags["site"], tags["meter"], int(t), float(v)) for t, v in series["values"]]
    return rows


async def test_partitioned_workers_survive_a_broker_node_kill(
    nats_cluster: NatsCluster, influxd: InfluxServer, tmp_path: Path
) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(_cluster_yaml())
    registry: Cluster = load_cluster(path)
    prefix = f"t{uuid.uuid4().hex[:8]}"
    run = uuid.uuid4().hex[:6]
    parts = [Partition(k, 2) for k in range(2)]
    owned = [sites_of_partition(SITES, p) for p in parts]
    assert all(owned), "the test needs sites on both workers"
    dbs = [f"nats_{run}_{p.suffix}" for p in parts]

    def worker(p: Partition) -> IngestStage:
        """Worker k of 2 as `ecocluster run --only ingest --partition k/2` builds it."""
        settings = load_settings(
            {
                # worker k on node k+1; the field publishes to node 0
                "mqtt_url": nats_cluster.urls[1 + p.index],
                "mqtt_protocol": "3.1.1",
                "mqtt_client_id": f"ingest-{run}",
                "partition": str(p),
                "topic_prefix": prefix,
                "influx_url": influxd.url,
                "influx_db": dbs[p.index],
                "data_dir": str(tmp_path / "data"),
                "ingest_flush_ms": 50,
            }
        )
        mine = ingest_settings(settings, registry)
        assert mine.ingest_sites == owned[p.index]  # the same stable hash as core.partition
        assert mine.mqtt_client_id != settings.mqtt_client_id  # a session of its own
        return IngestStage(worker_share(settings).site_view(registry), mine)

    workers = [worker(p) for p in parts]
    t0 = int(time.time() * 1000) - 3 * 86_400_000
    items = _readings(prefix, t0)
    n = len(items)
    try:
        async with running(workers[0], 30), running(workers[1], 30):
            field = PacedPublisher(nats_cluster.mqtt_ports[0], items, per_s=500)
            field.start()
            # mid-stream: node 1 (worker 0's broker) is killed, then restarted in place
            await wait_until(lambda: field.sent >= n // 4 and workers[0].accepted > 0, 30)
            generation = workers[0].subscriber.generation
            nats_cluster.kill(1)
            await asyncio.sleep(1.0)
            assert field.sent < n, "the kill must land mid-stream"
            await asyncio.to_thread(nats_cluster.start_node, 1)
            await asyncio.to_thread(field.join, 90)
            assert field.error is None, field.error
            await wait_until(
                lambda: (
                    sum(w.accepted for w in workers) >= n
                    and len(_stored(influxd, dbs[0])) + len(_stored(influxd, dbs[1])) >= n
                ),
                45,
                0.2,
            )
            assert workers[0].subscriber.generation > generation  # it did reconnect
            await asyncio.sleep(1.0)  # a late duplicate would show now
        stored = [_stored(influxd, db) for db in dbs]
    finally:
        for db in dbs:
            with contextlib.suppress(Exception):
                influxd.query(f'DROP DATABASE "{db}"')
    expected = {
        (topic.split("/")[1], topic.split("/")[2], doc["ts"], doc["m"]["power_w"])
        for topic, doc in ((t, orjson.loads(p)) for t, p in items)
    }
    union = stored[0] + stored[1]
    # A QoS 1 redelivery (the node died before the worker's PUBACK reached the stream) is
    # rewritten onto the same point (series + time): within a worker it cannot duplicate.
    # Across workers it could, if both took a site: each database holds only its own.
    assert len(union) == n  # nothing lost, no point in both databases
    assert set(union) == expected  # and each reading is the one that was sent
    for k, rows in enumerate(stored):  # each worker stored exactly its own sites
        assert {site for site, *_ in rows} == set(owned[k])
        assert len(rows) == PER_SITE * len(owned[k])


async def test_a_subscriber_fails_over_to_another_node_with_its_session(
    nats_cluster: NatsCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """`mqtt_fallback_urls`: the node a subscriber is on dies and stays dead; the subscriber
    moves to the next node, where its persistent session (replicated in JetStream) still
    holds its subscriptions and the QoS 1 messages published meanwhile."""
    from pydantic import SecretStr

    from ecocluster.ingest.subscriber import MqttSubscriber

    prefix = f"f{uuid.uuid4().hex[:8]}"
    settings = load_settings(
        {
            "mqtt_url": nats_cluster.urls[1],
            "mqtt_fallback_urls": [SecretStr(nats_cluster.urls[2])],
            "mqtt_protocol": "3.1.1",
            "mqtt_client_id": f"failover-{uuid.uuid4().hex[:6]}",
            "topic_prefix": prefix,
            "ingest_sites": [SITES[0]],
            "ingest_flush_ms": 20,
        }
    )
    topic = f"{prefix}/{SITES[0]}/em-00/data"
    received: set[bytes] = set()
    async with MqttSubscriber(settings) as sub:
        await asyncio.wait_for(sub.wait_subscribed(), 60)
        assert sub._loop.target.port == nats_cluster.mqtt_ports[1]
        nats_cluster.kill(1)  # and it stays dead
        payloads = [orjson.dumps({"ts": i, "m": {"power_w": i}}) for i in range(200)]
        field = Client(nats_cluster.mqtt_ports[0])
        await asyncio.to_thread(field.publish, topic, payloads)
        field.close()
        deadline = time.monotonic() + 60
        while len(received) < len(payloads) and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1):
                    batch = await sub.next_batch()
                    received.update(m.payload for m in batch)
                    sub.ack(batch)
        assert sub._loop.target.port == nats_cluster.mqtt_ports[2]
    assert received == set(payloads), f"{len(received)} of {len(payloads)}"
    assert not [r for r in caplog.records if "lost our session" in r.getMessage()]
