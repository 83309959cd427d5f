"""The live stream end to end: a reading published on MQTT reaches an SSE client through
the real Mosquitto, the ingest stage and the rules hot window within 2 s; only rows of the
caller's scope arrive; `Last-Event-ID` resumes without loss."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.api.node import running_node, wall_ms
from tests.ingest.conftest import Publisher
from tests.services import MosquittoServer

pytestmark = [pytest.mark.e2e]


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Parse an event stream (CRLF or LF) into {event, id, data} dicts."""
    buf = ""
    async for chunk in response.aiter_text():
        buf = (buf + chunk).replace("\r\n", "\n")
        while "\n\n" in buf:
            frame, buf = buf.split("\n\n", 1)
            event: dict[str, Any] = {"event": "message", "id": None, "data": ""}
            for line in frame.split("\n"):
                if not line or line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "data":
                    event["data"] += value
                elif name in ("event", "id"):
                    event[name] = value
            if event["data"] or event["event"] != "message":
                yield event


async def next_reading(
    events: AsyncIterator[dict[str, Any]], value: float, timeout_s: float
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The first readings event holding `value`, and every reading row seen until then."""
    seen: list[dict[str, Any]] = []

    async def scan() -> dict[str, Any]:
        async for ev in events:
            if ev["event"] == "readings":
                rows = orjson.loads(ev["data"])["readings"]
                seen.extend(rows)
                if any(r["value"] == value for r in rows):
                    return ev
        raise AssertionError("stream ended")

    return await asyncio.wait_for(scan(), timeout_s), seen


def payload(power_w: float) -> bytes:
    return orjson.dumps({"ts": wall_ms(), "m": {"power_w": power_w}})


async def test_mqtt_reading_reaches_the_stream_within_2s_in_scope_only(
    tmp_path: Path, territory_path: Path, mosquitto: MosquittoServer, topic_prefix: str
) -> None:
    publisher = Publisher(mosquitto.port)
    try:
        async with (
            running_node(tmp_path, territory_path, mosquitto, topic_prefix) as node,
            httpx.AsyncClient(base_url=node.url, timeout=10) as client,
        ):
            headers = {"Authorization": f"Bearer {node.tokens['facility_manager']}"}
            async with client.stream("GET", "/api/v1/stream", headers=headers) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                events = sse_events(response)
                first = await asyncio.wait_for(anext(events), 5)
                assert first["event"] == "ready"
                await asyncio.to_thread(
                    publisher.publish,
                    [
                        (f"{topic_prefix}/zeta-dairy/em-09/data", payload(7777.0)),
                    ],
                )
                sent = time.monotonic()
                await asyncio.to_thread(
                    publisher.publish,
                    [
                        (f"{topic_prefix}/alpine-hotel/em-01/data", payload(12345.0)),
                    ],
                )
                event, seen = await next_reading(events, 12345.0, timeout_s=2.0)
                latency = time.monotonic() - sent
                assert latency < 2.0
                assert {r["site"] for r in seen} == {"alpine-hotel"}  # the zeta reading never came
                last_id = event["id"]
            # published while disconnected; a resume with Last-Event-ID gets it
            await asyncio.to_thread(
                publisher.publish,
                [
                    (f"{topic_prefix}/alpine-hotel/em-01/data", payload(23456.0)),
                ],
            )
            live = await _wait_for_live(client, headers, 23456.0)
            assert live["sites"][0]["power_w"] == 23456.0  # the hot window has it too
            resumed = {**headers, "Last-Event-ID": last_id}
            async with client.stream("GET", "/api/v1/stream", headers=resumed) as response:
                event, _ = await next_reading(sse_events(response), 23456.0, timeout_s=2.0)
                assert event["id"] != last_id
            stale = {**headers, "Last-Event-ID": "000000-1"}
            async with client.stream("GET", "/api/v1/stream", headers=stale) as response:
                first = await asyncio.wait_for(anext(sse_events(response)), 5)
                assert first["event"] == "reset"
    finally:
        publisher.close()


async def _wait_for_live(
    client: httpx.AsyncClient, headers: dict[str, str], power_w: float
) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        r = await client.get(
            "/api/v1/live", params={"site": "alpine-hotel", "quantity": "power_w"}, headers=headers
        )
        body = r.json()
        if body["sites"][0]["power_w"] == power_w or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.05)


async def test_alert_changes_are_streamed(
    tmp_path: Path, territory_path: Path, mosquitto: MosquittoServer, topic_prefix: str
) -> None:
    async with (
        running_node(tmp_path, territory_path, mosquitto, topic_prefix) as node,
        httpx.AsyncClient(base_url=node.url, timeout=10) as client,
    ):
        headers = {"Authorization": f"Bearer {node.tokens['emergency_coordinator']}"}
        async with client.stream(
            "GET", "/api/v1/stream", params={"kinds": "alert"}, headers=headers
        ) as response:
            events = sse_events(response)
            assert (await asyncio.wait_for(anext(events), 5))["event"] == "ready"
            node.alerts.fire("night-flow", {"org": "zeta", "site": "zeta-dairy"})
            fired = node.alerts.fire("night-flow", {"org": "alpine", "site": "alpine-hotel"})
            event = await asyncio.wait_for(anext(events), 2)
            assert event["event"] == "alert"
            (row,) = orjson.loads(event["data"])["alerts"]
            assert row["id"] == fired.id and row["labels"]["site"] == "alpine-hotel"


async def test_api_alone_reads_the_store_and_mqtt(
    tmp_path: Path, territory_path: Path, mosquitto: MosquittoServer, topic_prefix: str
) -> None:
    """`--only api`: no hot window; the live view is seeded from the store and fed by MQTT."""
    from ecocluster.api import ApiDeps, EventHub, TokenStore
    from ecocluster.api.mqtt_live import MqttLive
    from ecocluster.api.stage import ApiStage
    from ecocluster.core.registry import load_cluster
    from ecocluster.core.settings import Settings
    from ecocluster.ingest.stores.duckdb import DuckDBStore
    from tests.api.conftest import STEP, day_of_readings, make_tokens

    cluster = load_cluster(territory_path)
    settings = Settings(
        mqtt_url=mosquitto.url,
        topic_prefix=topic_prefix,
        api_port=0,
        data_dir=tmp_path / "data",
        mqtt_protocol="3.1.1",
        api_rate_per_s=0,
    )
    store = DuckDBStore(tmp_path / "alone.duckdb")
    await store.open()
    await store.write(day_of_readings(cluster, end_ms=wall_ms() // STEP * STEP))
    hub = EventHub()
    tokens = TokenStore(tmp_path / "tokens.sqlite")
    auth = {"Authorization": f"Bearer {make_tokens(tokens)['facility_manager']}"}
    stage = ApiStage(
        ApiDeps(
            cluster=cluster,
            settings=settings,
            store=store,
            live=MqttLive(cluster, settings, store, hub),
            hub=hub,
            tokens=tokens,
        )
    )
    ready = asyncio.Event()
    task = asyncio.create_task(stage.run(ready))
    publisher = Publisher(mosquitto.port)
    try:
        await asyncio.wait_for(ready.wait(), 10)
        async with httpx.AsyncClient(base_url=stage.url, timeout=10) as client:
            seeded = await client.get("/api/v1/live", params={"site": "alpine-hotel"}, headers=auth)
            assert seeded.json()["sites"][0]["power_w"] == 5000.0  # from the store
            async with client.stream("GET", "/api/v1/stream", headers=auth) as response:
                events = sse_events(response)
                assert (await asyncio.wait_for(anext(events), 5))["event"] == "ready"
                await asyncio.to_thread(
                    publisher.publish,
                    [(f"{topic_prefix}/alpine-hotel/em-01/data", payload(31337.0))],
                )
                await next_reading(events, 31337.0, timeout_s=2.0)
            live = await _wait_for_live(client, auth, 31337.0)
            assert live["sites"][0]["power_w"] == 31337.0
    finally:
        publisher.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        tokens.close()
        await store.close()
