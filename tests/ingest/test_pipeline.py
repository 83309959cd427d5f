"""The pure core: a burst of messages → accepted readings, rejections and statuses."""

from __future__ import annotations

import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecocluster.core.registry import Cluster
from ecocluster.core.types import ReadingBatch
from ecocluster.ingest.mqtt import Inbound
from ecocluster.ingest.pipeline import Limits, dedupe_last, parse_status, prepare
from ecocluster.ingest.validate import TopicRouter

NOW = 1_800_000_000_000
LIMITS = Limits(max_payload_bytes=2048, max_future_ms=300_000, max_age_ms=86_400_000)


def msg(topic: str, payload: bytes, i: int = 0) -> Inbound:
    return Inbound(topic, payload, i + 1, 1, NOW, 1)


def test_status_payloads() -> None:
    assert [
        parse_status(p)
        for p in (b"online", b" OFFLINE\n", b'"online"', b'{"status": "offline"}', b"up", b"{")
    ] == [
        True,
        False,
        True,
        False,
        None,
        None,
    ]


def test_prepare_routes_decodes_and_checks(small_cluster: Cluster) -> None:
    router = TopicRouter(small_cluster, "eco")
    burst = [
        msg(
            "eco/s1/em-01/data",
            orjson.dumps({"ts": NOW - 1000, "m": {"power_w": 5.0, "energy_kwh": 1.5}}),
        ),
        msg("eco/s1/em-01/data", orjson.dumps({"ts": NOW + 3_600_000, "m": {"power_w": 5.0}})),
        msg("eco/s2/aq-01/senml", orjson.dumps([{"n": "no2", "u": "ug/m3", "v": 40, "t": -1}])),
        msg("eco/s2/aq-01/status", b"offline"),
        msg("other/s1/em-01/data", b"{}"),
    ]
    out = prepare(burst, router, small_cluster.series, LIMITS, now_ms=NOW)
    keys = [small_cluster.series[i] for i in out.batch.series_idx.tolist()]
    assert [(k.meter, k.quantity) for k in keys] == [
        ("em-01", "power_w"),
        ("em-01", "energy_kwh"),
        ("aq-01", "no2_ugm3"),
    ]
    assert out.batch.ts_ms.tolist() == [NOW - 1000, NOW - 1000, NOW - 1000]
    assert sorted(r.reason.value for r in out.rejected) == ["bad_topic", "future"]
    assert [(s.meter, s.online) for s in out.statuses] == [("aq-01", False)]
    assert out.kinds == {"data": 2, "senml": 1, "status": 1, "invalid": 1}


def test_dedupe_keeps_the_last_received() -> None:
    b = ReadingBatch(
        ("a", "b"),
        np.array([0, 1, 0, 0]),
        np.array([5, 5, 5, 4]),
        np.array([1.0, 2.0, 3.0, 4.0]),
        np.full(4, np.nan),
    )  # type: ignore[arg-type]
    got = dedupe_last(b)
    assert list(
        zip(got.series_idx.tolist(), got.ts_ms.tolist(), got.values.tolist(), strict=True)
    ) == [
        (0, 4, 4.0),
        (0, 5, 3.0),
        (1, 5, 2.0),
    ]


topics = st.sampled_from(
    [
        "eco/s1/em-01/data",
        "eco/s1/em-01/senml",
        "eco/s2/aq-01/data",
        "eco/s1/em-01/status",
        "eco/s9/x/data",
        "eco/s1/em 01/data",
        "eco/s1/em-01/data/x",
        "eco",
    ]
)
values = st.one_of(
    st.floats(allow_nan=True),
    st.integers(-(2**64), 2**64),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
)
native = st.fixed_dictionaries(
    {
        "m": st.dictionaries(
            st.sampled_from(["power_w", "energy_kwh", "temp_c", "x"]),
            values,
            min_size=1,
            max_size=3,
        )
    },
    optional={"ts": st.one_of(st.integers(NOW - 10**9, NOW + 10**9), values)},
)


DATA_TOPICS = ("eco/s1/em-01/data", "eco/s2/aq-01/data")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            topics,
            st.one_of(native, st.lists(native, min_size=1, max_size=3), st.binary(max_size=30)),
        ),
        max_size=8,
    )
)
def test_fuzz_every_data_reading_is_accepted_or_dead_lettered(
    small_cluster: Cluster, items: list[tuple[str, object]]
) -> None:
    router = TopicRouter(small_cluster, "eco")
    burst, expected, counted = [], 0, set()
    for i, (topic, doc) in enumerate(items):
        payload = doc if isinstance(doc, bytes) else _dump(doc)
        burst.append(msg(topic, payload, i))
        if topic in DATA_TOPICS and not isinstance(doc, bytes) and payload != b"null":
            objs = doc if isinstance(doc, list) else [doc]
            expected += sum(len(o["m"]) for o in objs)  # type: ignore[index]
            counted.add(i + 1)
    out = prepare(burst, router, small_cluster.series, LIMITS, now_ms=NOW)  # never raises
    rejected = sum(r.count for r in out.rejected if r.message.mid in counted)
    assert len(out.batch) + rejected == expected  # nothing silently dropped, nothing twice
    assert np.isfinite(out.batch.values).all()
    assert (
        (out.batch.ts_ms <= NOW + LIMITS.max_future_ms)
        & (out.batch.ts_ms >= NOW - LIMITS.max_age_ms)
    ).all()


def _dump(doc: object) -> bytes:
    try:
        return orjson.dumps(doc)
    except TypeError:  # an integer beyond 64 bits
        return b"null"
