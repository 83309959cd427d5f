"""`ecocluster run` with ingest and rules in one node: a reading over the limit, published
to a real Mosquitto, comes back as a `firing` transition on `{prefix}/_alerts/…`."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest

from ecocluster.core.registry import load_cluster
from ecocluster.core.settings import load_settings
from ecocluster.node import build_stages, run_node
from tests.services import MosquittoServer

CLUSTER = """\
territory: {id: test, name: Test, timezone: Europe/Rome}
organisations:
  - {id: o1, name: Org one, kind: private}
sites:
  - {id: s1, org: o1, name: Hotel, category: hotel, lat: 44.3, lon: 10.2}
meters:
  - {id: em-01, site: s1, quantities: [energy_kwh, power_w]}
rules:
  - {name: overload, type: threshold, quantity: power_w, above: 60000, severity: critical}
"""


def test_rules_without_ingest_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CLUSTER)
    with pytest.raises(ValueError, match="fed by ingest"):
        build_stages(load_cluster(path), load_settings(), ["rules"])


@pytest.mark.e2e
async def test_overload_published_by_a_meter_comes_out_as_an_alert(
    tmp_path: Path, mosquitto: MosquittoServer, topic_prefix: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CLUSTER)
    cluster = load_cluster(path)
    settings = load_settings(
        {
            "mqtt_url": mosquitto.url,
            "mqtt_client_id": f"node-{topic_prefix}",
            "topic_prefix": topic_prefix,
            "data_dir": str(tmp_path / "data"),
            "ingest_flush_ms": 50,
            "rules_tick_s": 0.2,
        }
    )
    alerts: list[dict[str, object]] = []
    got = threading.Event()
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        alerts.append({"topic": msg.topic, **orjson.loads(msg.payload)})
        got.set()

    watcher.on_message = on_message
    watcher.connect("127.0.0.1", mosquitto.port)
    watcher.subscribe(f"{topic_prefix}/_alerts/#", qos=1)
    watcher.loop_start()
    stages = build_stages(cluster, settings, ["ingest", "rules"])
    assert [s.name for s in stages] == ["ingest", "rules"]
    stop, ready = asyncio.Event(), asyncio.Event()
    node = asyncio.create_task(run_node(stages, stop=stop, on_ready=ready.set))
    try:
        await asyncio.wait_for(ready.wait(), 15)
        meter = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        meter.connect("127.0.0.1", mosquitto.port)
        meter.loop_start()
        now = int(time.time() * 1000)
        payload = orjson.dumps(
            [{"ts": now - 1000, "m": {"power_w": 5000.0}}, {"ts": now, "m": {"power_w": 72000.0}}]
        )
        meter.publish(f"{topic_prefix}/s1/em-01/data", payload, qos=1).wait_for_publish(10)
        meter.loop_stop()
        meter.disconnect()
        assert await asyncio.to_thread(got.wait, 20), "no alert arrived"
    finally:
        stop.set()
        await asyncio.wait_for(node, 20)
        watcher.loop_stop()
        watcher.disconnect()
    (alert,) = alerts
    assert alert["topic"] == f"{topic_prefix}/_alerts/s1/overload"
    assert alert["state"] == "firing" and alert["value"] == 72000.0
    assert alert["labels"]["meter"] == "em-01"  # type: ignore[index]
    assert (tmp_path / "data" / "rules-state.json").exists()  # pending/firing state is kept
