"""Two-way acknowledgement: signed links, SMS replies through each gateway's webhook shape,
e-mail replies through the inbound SMTP listener, and wrong-scope acks refused."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import smtplib
import time
from email.message import EmailMessage

import pytest

from ecocluster.alerts.links import AckLinks, InvalidAckLink
from ecocluster.alerts.replies import (
    ReplyRejected,
    parse_email_reply,
    parse_httpsms,
    parse_reply,
    parse_smseagle,
    parse_smsgate,
)
from ecocluster.alerts.stage import AlertStage
from tests.alerts.conftest import T0, transition
from tests.services import free_port


@pytest.mark.parametrize(
    ("text", "verb", "code"),
    [
        ("ACK 4821", "ack", "4821"),
        ("ok 4821 arrivo", "ack", "4821"),
        ("RISOLTO 4821", "resolved", "4821"),
        ("Preso #4821", "ack", "4821"),
        ("resolved: 48213", "resolved", "48213"),
        ("> ACK 1111\n\nACK 4821", "ack", "4821"),
    ],
)
def test_reply_commands(text: str, verb: str, code: str) -> None:
    reply = parse_reply(text)
    assert reply is not None and (reply.verb, reply.code) == (verb, code)


@pytest.mark.parametrize("text", ["hello", "ACK", "NO 4821", "4821", ""])
def test_not_a_command(text: str) -> None:
    assert parse_reply(text) is None


def test_links_verify_and_expire() -> None:
    links = AckLinks(b"k" * 32, "https://eco.example.org/", 3_600_000)
    token = links.token(42, "rossi", T0)
    claim = links.verify(token, T0 + 1000)
    assert (claim.alert_id, claim.contact_id) == (42, "rossi")
    assert len(links.url(42, "rossi", T0)) < 70  # fits an SMS
    with pytest.raises(InvalidAckLink, match="expired"):
        links.verify(token, T0 + 2 * 3_600_000)
    body, mac = token.split(".")
    forged = (
        base64.urlsafe_b64encode(base64.urlsafe_b64decode(body + "==")[:-1] + b"x")
        .rstrip(b"=")
        .decode()
    )
    with pytest.raises(InvalidAckLink, match="signature"):
        links.verify(f"{forged}.{mac}", T0)
    with pytest.raises(InvalidAckLink):
        AckLinks(b"o" * 32, "https://x", 3_600_000).verify(token, T0)


async def test_ack_by_link_in_the_notification(make_cluster, make_service, clock, receiver) -> None:
    svc = await make_service(make_cluster())
    await svc.on_transitions([transition()])
    clock.advance(30_000)
    await svc.settle()
    message = json.loads(next(r.body for r in receiver.requests if r.path == "/walker"))["message"]
    token = message.split("/a/")[1].split()[0]
    assert svc.verify_ack_link(token).contact_id == "walker"
    result = await svc.ack_by_link(token)
    assert result.alert.acked_by == "walker" and result.alert.ack_channel == "link"


def test_gateway_payloads() -> None:
    eagle = parse_smseagle(
        {"sender": "+393330000001", "msg": "ACK 4821", "apikey": "k1"}, apikey="k1"
    )
    assert (eagle.sender, eagle.text) == ("+393330000001", "ACK 4821")
    with pytest.raises(ReplyRejected):
        parse_smseagle({"sender": "+39333", "msg": "ACK 1", "apikey": "bad"}, apikey="k1")
    body = json.dumps(
        {"event": "sms:received", "payload": {"message": "OK 4821", "phoneNumber": "+393330000001"}}
    ).encode()
    stamp = str(int(time.time()))
    sig = hmac.new(b"gate", body + stamp.encode(), hashlib.sha256).hexdigest()
    got = parse_smsgate(body, {"X-Signature": sig, "X-Timestamp": stamp}, signing_key="gate")
    assert got is not None and got.text == "OK 4821"
    with pytest.raises(ReplyRejected):
        parse_smsgate(body, {"X-Signature": "0" * 64, "X-Timestamp": stamp}, signing_key="gate")

    def jwt(key: bytes) -> str:
        enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
        head = f"{enc({'alg': 'HS256', 'typ': 'JWT'})}.{enc({'exp': time.time() + 60})}"
        mac = hmac.new(key, head.encode(), hashlib.sha256).digest()
        return f"{head}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"

    event = json.dumps(
        {
            "type": "message.phone.received",
            "data": {"contact": "+393330000001", "content": "RISOLTO 4821"},
        }
    ).encode()
    got = parse_httpsms(event, {"Authorization": f"Bearer {jwt(b'hs')}"}, signing_key="hs")
    assert got is not None and got.text == "RISOLTO 4821"
    with pytest.raises(ReplyRejected):
        parse_httpsms(event, {"Authorization": f"Bearer {jwt(b'other')}"}, signing_key="hs")
    assert (
        parse_httpsms(json.dumps({"type": "message.phone.sent", "data": {}}).encode(), {}) is None
    )


async def test_sms_reply_acks_in_scope_and_refuses_strangers(
    make_cluster, make_service, clock
) -> None:
    svc = await make_service(make_cluster())
    await svc.on_transitions([transition(site="sede", org="parco", meter="em-02")])
    (alert,) = await svc.list_alerts()
    stranger = await svc.handle_reply(
        parse_smseagle({"sender": "+390000000000", "msg": f"ACK {alert.code}"})
    )
    assert not stranger.ok and stranger.message == "unknown sender"
    body = json.dumps(
        {
            "event": "sms:received",
            "payload": {"message": f"ACK {alert.code} arrivo", "phoneNumber": "+39 333 0000001"},
        }
    ).encode()
    outcome = await svc.handle_reply(parse_smsgate(body, {}))  # rossi's number, parco's alert
    assert outcome.ok and outcome.alert.acked_by == "rossi" and outcome.alert.ack_channel == "sms"
    assert outcome.alert.ack_comment == "arrivo"


async def test_wrong_scope_reply_is_refused(make_cluster, make_service) -> None:
    svc = await make_service(make_cluster())
    await svc.on_transitions([transition(severity="warning")])  # hotel warning: rossi not told
    (alert,) = await svc.list_alerts()
    outcome = await svc.handle_reply(
        parse_smseagle({"sender": "+393330000001", "msg": f"OK {alert.code}"})
    )
    assert not outcome.ok and "out of scope" in outcome.message
    assert (await svc.get_alert(alert.id)).alert.acked_ms is None


async def test_email_reply_through_the_inbound_smtp_listener(
    make_cluster, make_service, settings, clock
) -> None:
    port = free_port()
    svc = await make_service(
        make_cluster(), settings=settings.model_copy(update={"alert_smtp_port": port})
    )
    await svc.on_transitions([transition()])
    (alert,) = await svc.list_alerts()
    stage = AlertStage(svc.cluster, svc.settings, svc, clock=clock)
    ready = asyncio.Event()
    task = asyncio.create_task(stage.run(ready))
    await asyncio.wait_for(ready.wait(), 5)
    await asyncio.sleep(0.2)
    mail = EmailMessage()
    mail["From"] = "Sarah Walker <Walker@Example.org>"
    mail["To"] = "alerts@eco.example.org"
    mail["Subject"] = "Re: [CRITICAL] power-overload"
    mail.set_content(f"ACK {alert.code} on site in 20 minutes\n\n> the original message")

    def deliver() -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
            client.send_message(mail)

    await asyncio.to_thread(deliver)
    for _ in range(50):
        if (await svc.get_alert(alert.id)).alert.acked_ms is not None:
            break
        await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    acked = (await svc.get_alert(alert.id)).alert
    assert acked.acked_by == "walker" and acked.ack_channel == "email"
    assert parse_email_reply(mail.as_bytes()).sender == "walker@example.org"
