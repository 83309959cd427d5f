"""Debian's `nats-server` with JetStream and its MQTT listener (MQTT 3.1.1 only, QoS ≤ 1),
the broker cluster the scale-out can be tested against here. Restartable on the same
ports and store: MQTT sessions and QoS 1 messages live in JetStream streams on disk.

`NatsServer` is one node. `NatsCluster` is three (or more) nodes on loopback joined by
cluster routes into one JetStream meta group, each with its own MQTT listener; the MQTT
streams (sessions `$MQTT_sess`, QoS 1 messages `$MQTT_msgs`, retained `$MQTT_rmsgs`) and the
consumers of persistent sessions are replicated on every node (`stream_replicas`), so a
session, its queued QoS 1 messages and the retained messages survive the loss of any one
node. Each node restarts on its own ports and store directory.

    with NatsCluster(tmp_path / "nats") as cluster:   # waits for a meta leader, a CONNACK
        cluster.urls                                   # ["mqtt://127.0.0.1:…", …] per node
        cluster.kill(1)                                # SIGKILL node 1
        cluster.start_node(1)                          # same ports, same store; waits
"""

from __future__ import annotations

import contextlib
import signal
import socket
import time
from pathlib import Path
from typing import Any

import httpx

from tests.services import _Process, free_port, require_binary, wait_for_port

__all__ = ["MQTT_STREAMS", "NatsCluster", "NatsNode", "NatsServer", "mqtt_connack"]

#: MQTT 3.1.1 CONNECT with clean session, keep-alive 30 s; the client id is appended.
_CONNECT_HEAD = b"\x00\x04MQTT\x04\x02\x00\x1e"
#: The account's MQTT streams: sessions, QoS 1 messages, retained messages.
MQTT_STREAMS = frozenset({"$MQTT_sess", "$MQTT_msgs", "$MQTT_rmsgs"})


class NatsServer(_Process):
    name = "nats-server"

    def __init__(
        self, workdir: Path, *, mqtt_port: int | None = None, max_ack_pending: int = 1000
    ) -> None:
        super().__init__(workdir)
        self.binary = require_binary("nats-server")
        self.port = free_port()
        self.mqtt_port = mqtt_port or free_port()
        #: Per subscription; one session's subscriptions may hold at most 65,535 in total.
        self.max_ack_pending = max_ack_pending

    @property
    def url(self) -> str:
        """The MQTT listener (what an ecocluster node connects to)."""
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    def config_text(self) -> str:
        store = self.workdir / "jetstream"
        return (
            f'server_name: "ecocluster-test-{self.mqtt_port}"\n'
            f"listen: 127.0.0.1:{self.port}\n"
            f'jetstream {{ store_dir: "{store}" }}\n'
            f"mqtt {{ host: 127.0.0.1, port: {self.mqtt_port},"
            f' max_ack_pending: {self.max_ack_pending}, ack_wait: "10s" }}\n'  # redeliver after 10 s, not 30 (see NatsNode)
        )

    def command(self) -> list[str]:
        conf = self.workdir / "nats.conf"
        conf.write_text(self.config_text())
        return [self.binary, "-c", str(conf)]

    def wait_ready(self) -> None:
        wait_for_port(self.mqtt_port, proc=self.proc)
        # The MQTT listener accepts before JetStream has its streams: wait for a CONNACK.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if mqtt_connack(self.mqtt_port, "prb"):
                return
            time.sleep(0.1)
        raise TimeoutError("nats-server's MQTT listener did not answer CONNECT")


def mqtt_connack(port: int, client_id: str, timeout_s: float = 2.0) -> bool:
    """One clean-session MQTT 3.1.1 CONNECT: True on CONNACK "accepted". nats-server
    answers only once JetStream can load (or create) the account's MQTT streams, which in
    a cluster needs a meta leader and a quorum of every stream's replicas."""
    ident = client_id.encode()
    body = _CONNECT_HEAD + len(ident).to_bytes(2, "big") + ident
    with (
        contextlib.suppress(OSError),
        socket.create_connection(("127.0.0.1", port), timeout_s) as sock,
    ):
        sock.sendall(bytes([0x10, len(body)]) + body)
        sock.settimeout(timeout_s)
        answer = sock.recv(4)
        with contextlib.suppress(OSError):
            sock.sendall(b"\xe0\x00")  # DISCONNECT: no will, no lingering session
        return answer == b"\x20\x02\x00\x00"
    return False


class NatsNode(_Process):
    """One node of a `NatsCluster`: client, route, monitoring and MQTT ports fixed at
    construction, so a restart comes back where its peers and clients look for it."""

    name = "nats-server"

    def __init__(
        self,
        workdir: Path,
        *,
        server_name: str,
        cluster_name: str,
        route_port: int,
        peer_route_ports: list[int],
        stream_replicas: int,
        max_ack_pending: int = 1000,
        ack_wait_s: float = 10.0,
    ) -> None:
        super().__init__(workdir)
        self.binary = require_binary("nats-server")
        self.server_name = server_name
        self.cluster_name = cluster_name
        self.port = free_port()
        self.http_port = free_port()
        self.mqtt_port = free_port()
        self.route_port = route_port
        self.peer_route_ports = peer_route_ports
        self.stream_replicas = stream_replicas
        self.max_ack_pending = max_ack_pending
        #: How long a QoS 1 message delivered to a connection that died waits before it is
        #: redelivered (nats' default 30 s); must exceed the subscriber's ack latency.
        self.ack_wait_s = ack_wait_s

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    @property
    def store_dir(self) -> Path:
        return self.workdir / "jetstream"

    def config_text(self) -> str:
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.peer_route_ports)
        return (
            f'server_name: "{self.server_name}"\n'
            f"listen: 127.0.0.1:{self.port}\n"
            f"http: 127.0.0.1:{self.http_port}\n"
            f'jetstream {{ store_dir: "{self.store_dir}", max_file_store: 2G,'
            " max_memory_store: 256M }\n"
            f'cluster {{ name: "{self.cluster_name}", listen: 127.0.0.1:{self.route_port},'
            f" routes: [{routes}] }}\n"
            f"mqtt {{ host: 127.0.0.1, port: {self.mqtt_port},"
            f' max_ack_pending: {self.max_ack_pending}, ack_wait: "{self.ack_wait_s:g}s",'
            f" stream_replicas: {self.stream_replicas},"
            f" consumer_replicas: {self.stream_replicas} }}\n"
        )

    def command(self) -> list[str]:
        conf = self.workdir / "nats.conf"
        conf.write_text(self.config_text())
        return [self.binary, "-c", str(conf)]

    def wait_ready(self) -> None:
        # Alone a node cannot elect a meta leader: the cluster waits for that (`wait_node`).
        wait_for_port(self.http_port, proc=self.proc)
        wait_for_port(self.mqtt_port, proc=self.proc)

    def jsz(self) -> dict[str, Any]:
        """The node's JetStream report (`/jsz`): meta leader, cluster size, streams."""
        response = httpx.get(f"http://127.0.0.1:{self.http_port}/jsz", timeout=2)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def jsz_details(self) -> dict[str, Any]:
        """`/jsz` with every account's streams and consumers and their replicas."""
        response = httpx.get(
            f"http://127.0.0.1:{self.http_port}/jsz",
            params={"accounts": "true", "streams": "true", "consumers": "true"},
            timeout=2,
        )
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush; what it had not fsynced or replicated is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


class NatsCluster:
    """`size` nats-server nodes, one JetStream cluster, an MQTT listener on each (module
    docstring). `start()` returns when every node knows the meta leader of the whole
    cluster, answers an MQTT CONNECT (the first one creates the replicated MQTT streams),
    and holds a current copy of every MQTT stream (`lagging_replicas`)."""

    def __init__(
        self,
        workdir: Path,
        *,
        size: int = 3,
        max_ack_pending: int = 1000,
        ack_wait_s: float = 10.0,
    ) -> None:
        route_ports = [free_port() for _ in range(size)]
        self.name = f"eco-{route_ports[0]}"
        self.nodes = [
            NatsNode(
                workdir / f"n{i}",
                server_name=f"n{i}",
                cluster_name=self.name,
                route_port=route_ports[i],
                peer_route_ports=[p for j, p in enumerate(route_ports) if j != i],
                stream_replicas=min(size, 3),
                max_ack_pending=max_ack_pending,
                ack_wait_s=ack_wait_s,
            )
            for i in range(size)
        ]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def mqtt_ports(self) -> list[int]:
        return [node.mqtt_port for node in self.nodes]

    def start(self, timeout_s: float = 60.0) -> None:
        try:
            for node in self.nodes:
                node.start()
            for i in range(len(self.nodes)):
                self.wait_node(i, timeout_s)
            self.wait_replicated(timeout_s)
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def kill(self, i: int) -> None:
        self.nodes[i].kill()

    def start_node(self, i: int, timeout_s: float = 60.0) -> None:
        """(Re)start node `i` on its ports and store and wait until it serves MQTT again
        and has caught up with every MQTT stream (so killing another node next still
        leaves a current quorum)."""
        self.nodes[i].start()
        self.wait_node(i, timeout_s)
        self.wait_replicated(timeout_s)

    def meta_leader(self, i: int) -> str | None:
        """The meta leader node `i` knows of, if it has caught up with the whole cluster."""
        with contextlib.suppress(httpx.HTTPError, ValueError):
            meta = self.nodes[i].jsz().get("meta_cluster") or {}
            if meta.get("cluster_size") == len(self.nodes) and meta.get("leader"):
                return str(meta["leader"])
        return None

    def lagging_replicas(self) -> list[str]:
        """What keeps the MQTT streams from being fully replicated on the running nodes:
        a stream with no leader among them ("$MQTT_msgs: no leader"), or a replica on a
        running node its leader does not report current ("$MQTT_msgs@n1"); empty when every
        running node holds a current copy of every stream. A node stopped on purpose is not
        waited for. (Consumers are left out: the leader of an idle consumer may report a
        follower as not current until the consumer next moves, and a clean session's
        consumer orphaned by a node's death never does.)"""
        running = {node.server_name for node in self.nodes if node.running}
        led: set[str] = set()
        lagging: list[str] = []
        for node in self.nodes:
            if not node.running:
                continue
            try:
                report = node.jsz_details()
            except (httpx.HTTPError, ValueError):
                lagging.append(f"{node.server_name} unreachable")
                continue
            for account in report.get("account_details") or []:
                for stream in account.get("stream_detail") or []:
                    cluster = stream.get("cluster") or {}
                    if cluster.get("leader") != node.server_name:
                        continue
                    led.add(stream["name"])
                    for replica in cluster.get("replicas") or []:
                        if replica.get("name") in running and not replica.get("current"):
                            lagging.append(f"{stream['name']}@{replica['name']}")
        lagging += [f"{name}: no leader" for name in sorted(MQTT_STREAMS - led)]
        return lagging

    def wait_replicated(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while lagging := self.lagging_replicas():
            if time.monotonic() > deadline:
                raise TimeoutError(f"nats cluster not fully replicated: {', '.join(lagging)}")
            time.sleep(0.2)

    def wait_node(self, i: int, timeout_s: float = 60.0) -> None:
        node = self.nodes[i]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not node.running:
                raise RuntimeError(f"{node.server_name} exited; see {node.log_path}")
            if self.meta_leader(i) and mqtt_connack(node.mqtt_port, f"ready-{node.server_name}"):
                return
            time.sleep(0.2)
        tail = node.log_path.read_text(errors="replace")[-2000:]
        raise TimeoutError(
            f"nats node {node.server_name} not ready after {timeout_s:.0f}s (meta leader"
            f" {self.meta_leader(i)!r})\n--- log ---\n{tail}"
        )

    def __enter__(self) -> NatsCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
