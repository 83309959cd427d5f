"""The harness's services are real: publish/subscribe through Mosquitto, write/query influxd,
send mail to the SMTP server, post to the HTTP receiver."""

from __future__ import annotations

import smtplib
import subprocess
import threading
from email.message import EmailMessage

import httpx
import paho.mqtt.client as mqtt
import pytest

from tests.services import HttpReceiver, InfluxServer, MosquittoServer, SmtpServer

pytestmark = pytest.mark.e2e


def test_mosquitto_delivers_qos1_between_real_clients(
    mosquitto: MosquittoServer, topic_prefix: str
) -> None:
    got: list[tuple[str, bytes]] = []
    done = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        got.append((msg.topic, msg.payload))
        if len(got) == 3:
            done.set()

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{topic_prefix}-sub")
    sub.on_message = on_message
    sub.connect("127.0.0.1", mosquitto.port)
    sub.subscribe(f"{topic_prefix}/+/+/data", qos=1)
    sub.loop_start()
    try:
        pub = subprocess.run(
            [
                "mosquitto_pub",
                "-p",
                str(mosquitto.port),
                "-q",
                "1",
                "-l",
                "-t",
                f"{topic_prefix}/s1/m1/data",
            ],
            input=b"a\nb\nc\n",
            timeout=10,
            check=False,
        )
        assert pub.returncode == 0
        assert done.wait(10), f"only got {got}"
    finally:
        sub.loop_stop()
        sub.disconnect()
    assert [p for _, p in got] == [b"a", b"b", b"c"]
    assert {t for t, _ in got} == {f"{topic_prefix}/s1/m1/data"}


def test_mosquitto_keeps_queue_for_persistent_session(
    mosquitto: MosquittoServer, topic_prefix: str
) -> None:
    """Messages published while a persistent QoS 1 subscriber is away are kept for it."""
    client_id = f"{topic_prefix}-persist"
    topic = f"{topic_prefix}/s/m/data"

    subscribed = threading.Event()
    first = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    first.on_subscribe = lambda *_args: subscribed.set()
    first.connect("127.0.0.1", mosquitto.port)
    first.loop_start()
    first.subscribe(topic, qos=1)
    assert subscribed.wait(5)
    first.disconnect()
    first.loop_stop()

    n = 2500  # more than Mosquitto's default max_queued_messages (1000)
    lines = "".join(f"{i}\n" for i in range(n)).encode()
    subprocess.run(
        ["mosquitto_pub", "-p", str(mosquitto.port), "-q", "1", "-l", "-t", topic],
        input=lines,
        timeout=30,
        check=True,
    )

    got: list[int] = []
    done = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        got.append(int(msg.payload))
        if len(got) >= n:
            done.set()

    again = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    again.on_message = on_message
    again.connect("127.0.0.1", mosquitto.port)
    again.loop_start()
    try:
        assert done.wait(20), f"received {len(got)} of {n}"
    finally:
        again.loop_stop()
        again.disconnect()
    assert sorted(got) == list(range(n))


def test_influxd_write_then_query(influxd: InfluxServer, influx_db: str) -> None:
    influxd.create_database(influx_db)
    influxd.write_lines(
        influx_db,
        "power_w,org=parco,site=s1,meter=em-01 value=5230 1732470000123\n"
        "power_w,org=parco,site=s1,meter=em-01 value=5300 1732470060123\n",
    )
    result = influxd.query("SELECT value FROM power_w WHERE meter='em-01'", db=influx_db)
    values = result["results"][0]["series"][0]["values"]
    assert values == [[1732470000123, 5230], [1732470060123, 5300]]


def test_influxd_survives_restart_with_its_data(influxd: InfluxServer, influx_db: str) -> None:
    influxd.create_database(influx_db)
    influxd.write_lines(influx_db, "temp_c,org=o,site=s,meter=m value=1.5 1000\n")
    influxd.restart()
    result = influxd.query("SELECT count(value) FROM temp_c", db=influx_db)
    assert result["results"][0]["series"][0]["values"][0][1] == 1


def test_smtp_server_records_mail(smtp_server: SmtpServer) -> None:
    msg = EmailMessage()
    msg["From"] = "alerts@ecocluster.test"
    msg["To"] = "rossi@example.org"
    msg["Subject"] = "[CRITICAL] power-overload"
    msg.set_content("Hotel al Lago: 72 kW")
    with smtplib.SMTP("127.0.0.1", smtp_server.port, timeout=5) as smtp:
        smtp.send_message(msg)
    (mail,) = smtp_server.wait_for(1)
    assert mail.rcpt_tos == ["rossi@example.org"]
    assert mail.subject == "[CRITICAL] power-overload"
    assert "72 kW" in mail.body_text()


def test_http_receiver_records_and_can_fail(http_receiver: HttpReceiver) -> None:
    ok = httpx.post(f"{http_receiver.url}/hook", json={"a": 1})
    http_receiver.status = 503
    failed = httpx.post(f"{http_receiver.url}/hook", content=b"x")
    assert (ok.status_code, failed.status_code) == (200, 503)
    first, second = http_receiver.wait_for(2)
    assert first.path == "/hook" and first.body == b'{"a":1}'
    assert second.body == b"x"
