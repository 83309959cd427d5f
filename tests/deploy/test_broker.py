"""The generated Mosquitto configuration on a real Mosquitto: who may publish and read what."""

from __future__ import annotations

import json
import socket
import ssl

import pytest

from tests.deploy.conftest import HASHED_SECRET, Deployment, invoke
from tests.deploy.mqtt_client import Client, connect_refused

pytestmark = pytest.mark.e2e


def _device(dep: Deployment, site: str, meter: str, **kw: object) -> Client:
    secret = dep.secret(f"device:{site}/{meter}")
    client = Client(dep.broker.port, f"{site}/{meter}", secret, **kw)  # type: ignore[arg-type]
    assert client.refused is None, client.refused
    return client


def _service(dep: Deployment, role: str) -> Client:
    client = Client(dep.broker.port, f"ecocluster-{role}", dep.secret(f"service:{role}"))
    assert client.refused is None, client.refused
    return client


def test_a_device_publishes_only_its_own_topics(deployment: Deployment) -> None:
    ingest = _service(deployment, "ingest")
    alerts = _service(deployment, "alerts")
    try:
        assert ingest.subscribe("eco/#") == [1]
        assert alerts.subscribe("eco/_alerts/#") == [1]
        device = _device(deployment, "s1", "em-01")
        device.publish("eco/s2/em-01/data", b"forged: same meter id, other site")
        device.publish("eco/s1/wm-01/data", b"forged: other meter, same site")
        device.publish("eco/_alerts/s1/burst", b"forged transition")
        device.publish("eco/s1/em-01/data", b"own")
        device.publish("eco/s1/em-01/status", b"online")
        got = ingest.received(wait_s=3, until=2)
        assert sorted(got) == [("eco/s1/em-01/data", b"own"), ("eco/s1/em-01/status", b"online")]
        assert alerts.received(wait_s=0.3) == []
        device.close()
    finally:
        ingest.close()
        alerts.close()


def test_a_device_reads_nothing(deployment: Deployment) -> None:
    device = _device(deployment, "s2", "em-01")
    other = _device(deployment, "s1", "em-01")
    try:
        for topic in ("#", "eco/#", "eco/s2/em-01/#", "$SYS/#"):
            # Mosquitto 2.0 grants the filter and checks `read` on every delivery (later
            # versions may refuse the SUBACK): either way nothing may arrive
            device.subscribe(topic)
        other.publish("eco/s1/em-01/data", b"someone else's reading")
        device.publish("eco/s2/em-01/data", b"its own reading")
        assert device.received(wait_s=1.5) == []
    finally:
        device.close()
        other.close()


def test_wrong_unknown_and_anonymous_logins_are_refused(deployment: Deployment) -> None:
    port = deployment.broker.port
    secret = deployment.secret("device:s1/em-01")
    assert connect_refused(port, "s1/em-01", secret) is None
    assert connect_refused(port, "s1/em-01", secret + "x") is not None
    assert connect_refused(port, "s1/em-01", deployment.secret("device:s2/em-01")) is not None
    assert connect_refused(port, "nobody", "whatever") is not None
    assert connect_refused(port, None, None) is not None


def test_passwords_from_the_cluster_file_and_given_hashes_work(deployment: Deployment) -> None:
    port = deployment.broker.port
    assert connect_refused(port, "dev-wm", "chosen-pw") is None
    assert connect_refused(port, "dev-wm", "chosen-pw2") is not None
    assert connect_refused(port, "s2/aq-01", HASHED_SECRET) is None
    assert connect_refused(port, "s2/aq-01", "guess") is not None


def test_services_read_only_what_their_stage_consumes(deployment: Deployment) -> None:
    rules = _service(deployment, "rules")
    alerts = _service(deployment, "alerts")
    ingest = _service(deployment, "ingest")
    try:
        rules.subscribe("eco/#")
        alerts.subscribe("eco/#")
        ingest.publish("eco/s1/em-01/data", b"ingest must not publish")
        ingest.publish("eco/_alerts/s1/r", b"nor transitions")
        rules.publish("eco/s1/em-01/data", b"rules must not publish readings")
        rules.publish("eco/_alerts/s1/burst", b"transition")
        got = rules.received(wait_s=3, until=1)
        assert got == [("eco/_alerts/s1/burst", b"transition")]
        # alerts reads its own topics only, not the readings it also subscribed to
        assert alerts.received(wait_s=0.5) == [("eco/_alerts/s1/burst", b"transition")]
    finally:
        for client in (rules, alerts, ingest):
            client.close()


def test_tls_with_the_dev_ca_works_and_plain_mqtt_on_the_tls_port_fails(
    deployment: Deployment,
) -> None:
    ca = deployment.certs / "ca.crt"
    secret = deployment.secret("device:s1/em-01")
    tls = Client(deployment.tls_port, "s1/em-01", secret, ca_file=ca)
    ingest = _service(deployment, "ingest")
    try:
        assert tls.refused is None
        ingest.subscribe("eco/s1/em-01/#")
        tls.publish("eco/s1/em-01/data", b"over tls")
        assert ingest.received(wait_s=3, until=1) == [("eco/s1/em-01/data", b"over tls")]
    finally:
        tls.close()
        ingest.close()
    with pytest.raises((TimeoutError, OSError)):
        Client(deployment.tls_port, "s1/em-01", secret, timeout_s=2).close()
    # and the broker's certificate really chains to the dev CA (and names 127.0.0.1)
    ctx = ssl.create_default_context(cafile=str(ca))
    address = ("127.0.0.1", deployment.tls_port)
    with (
        socket.create_connection(address, 5) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as wrapped,
    ):
        assert wrapped.version() in ("TLSv1.2", "TLSv1.3")
    other_ca = ssl.create_default_context()  # the system CAs do not know the dev CA
    with socket.create_connection(address, 5) as raw, pytest.raises(ssl.SSLCertVerificationError):
        other_ca.wrap_socket(raw, server_hostname="127.0.0.1")


def test_a_second_run_keeps_every_secret_and_the_broker_files(deployment: Deployment) -> None:
    store = deployment.data / "mqtt-credentials.json"
    before = json.loads(store.read_text())
    passwd = (deployment.out / "passwd").read_text()
    output = deployment.broker_config()
    assert "0 new" in output
    assert json.loads(store.read_text()) == before
    assert (deployment.out / "passwd").read_text() == passwd
    assert store.stat().st_mode & 0o777 == 0o600
    # still accepted by the running broker after it re-reads its files
    deployment.broker.restart()
    secret = deployment.secret("device:s1/em-01")
    assert connect_refused(deployment.broker.port, "s1/em-01", secret) is None


def test_device_credentials_prints_a_block_that_logs_in(deployment: Deployment) -> None:
    out = invoke(
        "device-credentials", "s1/wm-01", "--config", str(deployment.cluster_file),
        "--data-dir", str(deployment.data), "--json", "--broker", "mqtts://broker.example:8883",
    )  # fmt: skip
    block = json.loads(out)
    assert block["username"] == "dev-wm"
    assert block["topics"]["data"] == "eco/s1/wm-01/data"
    assert block["will"] == {"topic": "eco/s1/wm-01/status", "payload": "offline", "retain": True}
    assert connect_refused(deployment.broker.port, block["username"], block["password"]) is None
    text = invoke(
        "device-credentials", "s1/em-01", "--config", str(deployment.cluster_file),
        "--data-dir", str(deployment.data),
    )  # fmt: skip
    assert deployment.secret("device:s1/em-01") in text
    assert "eco/s1/em-01/status" in text
