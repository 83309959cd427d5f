"""`--only alerts`: transitions arrive on `{prefix}/_alerts/#` from a real Mosquitto, QoS 1,
and each is acknowledged only after the alert state is committed."""

from __future__ import annotations

import asyncio

import paho.mqtt.client as mqtt
import pytest
from pydantic import SecretStr

from ecocluster.alerts.stage import AlertStage
from tests.alerts.conftest import transition
from tests.services import MosquittoServer


@pytest.mark.e2e
async def test_transitions_from_mqtt_become_alerts(
    make_cluster, make_service, settings, mosquitto: MosquittoServer, topic_prefix: str
) -> None:
    mine = settings.model_copy(
        update={
            "mqtt_url": SecretStr(mosquitto.url),
            "topic_prefix": topic_prefix,
            "mqtt_client_id": f"{topic_prefix}-node",
        }
    )
    svc = await make_service(make_cluster(), settings=mine)
    stage = AlertStage(svc.cluster, mine, svc, consume_mqtt=True)
    ready = asyncio.Event()
    task = asyncio.create_task(stage.run(ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{topic_prefix}-pub")
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        for tr in (transition(), transition(meter="em-02", site="sede", org="parco")):
            pub.publish(
                f"{topic_prefix}/_alerts/{tr.labels['site']}/{tr.rule}", tr.to_json(), qos=1
            ).wait_for_publish(5)
        pub.publish(f"{topic_prefix}/_alerts/x/y", b"not json", qos=1).wait_for_publish(5)
        for _ in range(100):
            if stage.consumed >= 3:
                break
            await asyncio.sleep(0.05)
        pub.loop_stop()
        pub.disconnect()
        alerts = await svc.list_alerts()
        assert {a.labels["site"] for a in alerts} == {"lago", "sede"}
        assert stage.consumed == 3  # the bad message was consumed (logged, skipped), not stuck
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
