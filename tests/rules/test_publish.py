"""Transitions over MQTT to a real Mosquitto, decoded as the alert stage would."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
import pytest

from ecocluster.core.registry import Cluster
from ecocluster.core.settings import _parse_mqtt_url
from ecocluster.rules.publish import MqttTransitionPublisher, alert_topic, alerts_filter
from ecocluster.rules.stage import RulesStage
from ecocluster.rules.transitions import Transition
from tests.rules.conftest import MIN, T0, batch
from tests.services import MosquittoServer


def test_topic_names_the_site_or_underscore() -> None:
    t = Transition("r", "firing", "ok", "warning", {"site": "s1"}, 1.0, 0.0, 0, 0)  # type: ignore[arg-type]
    assert alert_topic("eco", t) == "eco/_alerts/s1/r"
    wide = Transition("r", "firing", "ok", "warning", {"org": "o1"}, 1.0, 0.0, 0, 0)  # type: ignore[arg-type]
    assert alert_topic("eco", wide) == "eco/_alerts/_/r"
    assert alerts_filter("eco") == "eco/_alerts/#"


def test_transition_json_round_trip_keeps_nan() -> None:
    t = Transition(
        "r",
        "resolved",
        "firing",
        "critical",
        {"site": "s1"},
        float("nan"),
        5.0,
        1,
        2,  # type: ignore[arg-type]
        flapping=True,
    )
    back = Transition.from_json(t.to_json())
    assert back.target == t.target and back.flapping and back.threshold == 5.0
    assert back.value != back.value  # NaN survives as NaN


@pytest.mark.e2e
async def test_stage_publishes_transitions_with_qos1(
    mosquitto: MosquittoServer, topic_prefix: str, make_cluster: Callable[..., Cluster]
) -> None:
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{topic_prefix}-sub")
    subscribed = threading.Event()
    sub.on_message = lambda c, u, m: received.put(m)
    sub.on_subscribe = lambda *args: subscribed.set()
    sub.connect("127.0.0.1", mosquitto.port)
    sub.subscribe(alerts_filter(topic_prefix), qos=1)
    sub.loop_start()
    assert subscribed.wait(10)
    try:
        publisher = MqttTransitionPublisher(
            _parse_mqtt_url(mosquitto.url), prefix=topic_prefix, client_id=f"{topic_prefix}-rules"
        )
        cold = {"name": "cold", "type": "threshold", "quantity": "power_w", "below": 0}
        stage = RulesStage(make_cluster([cold]), sinks=[publisher], clock=lambda: T0 + MIN)
        await publisher.start()
        await stage.on_readings(batch(stage.engine.cluster, [(0, T0, -4.0)]))
        await stage.tick()
        await publisher.close()
        msg = received.get(timeout=10)
    finally:
        sub.loop_stop()
        sub.disconnect()
    assert msg.topic == f"{topic_prefix}/_alerts/s1/cold"
    assert msg.qos == 1
    t = Transition.from_json(msg.payload)
    assert (t.rule, t.state, t.labels["meter"], t.value) == ("cold", "firing", "m1", -4.0)
