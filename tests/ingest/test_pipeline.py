"""The pure core: a burst of messages → accepted readings, rejections and statuses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecocluster.core.registry import Cluster
from ecocluster.core.types import ReadingBatch
from ecocluster.ingest.deadletter import DeadLetterLog, record_rejections
from ecocluster.ingest.errors import PayloadError, Reason
from ecocluster.ingest.mqtt import Inbound
from ecocluster.ingest.pipeline import Limits, dedupe_last, parse_status, prepare
from ecocluster.ingest.registers import RegisterTracker
from ecocluster.ingest.spool import decode_batch, encode_batch
from ecocluster.ingest.stamps import ReceiptStamper
from ecocluster.ingest.stores.lineproto import encode_lines
from ecocluster.ingest.validate import Route, TopicRouter

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
        msg(
            "eco/s2/aq-01/senml",
            orjson.dumps([{"bt": (NOW - 1000) / 1000, "n": "no2", "u": "ug/m3", "v": 40}]),
        ),
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
    assert out.kinds == {"data": 2, "senml": 1, "status": 1, "invalid": 1, "retained_untimed": 0}


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


# -- readings without a time (issue 9 #1) -------------------------------------------------------
@dataclass(frozen=True)
class Msg:
    """An inbound message with the MQTT flags the subscriber reports (RETAIN, DUP)."""

    topic: str
    payload: bytes
    mid: int
    qos: int = 1
    recv_ms: int = NOW
    generation: int = 1
    retain: bool = False
    dup: bool = False


UNTIMED = [
    ("eco/s1/em-01/data", orjson.dumps({"m": {"power_w": float(i), "energy_kwh": 100.0 + i}}))
    for i in range(200)
] + [("eco/s2/aq-01/senml", orjson.dumps([{"n": "no2", "v": 7.0}, {"n": "o3", "v": 8.0}]))]


def test_untimed_backlog_is_refused_and_counted_by_default(small_cluster: Cluster) -> None:
    router = TopicRouter(small_cluster, "eco")
    burst = [Msg(t, p, i + 1) for i, (t, p) in enumerate(UNTIMED)]
    out = prepare(burst, router, small_cluster.series, LIMITS, now_ms=NOW)  # type: ignore[arg-type]
    assert len(out.batch) == 0
    assert {r.reason for r in out.rejected} == {Reason.NO_TIME}
    assert out.rejected_readings == 2 * 200 + 2  # every reading accounted for


def test_untimed_backlog_is_stamped_per_message_and_nothing_collapses(
    small_cluster: Cluster, tmp_path: Path
) -> None:
    router = TopicRouter(small_cluster, "eco")
    stamper = ReceiptStamper(tmp_path / "stamps.jsonl")
    burst = [Msg(t, p, i + 1) for i, (t, p) in enumerate(UNTIMED)]  # one socket read: one recv_ms
    out = prepare(burst, router, small_cluster.series, LIMITS, now_ms=NOW, stamper=stamper)  # type: ignore[arg-type]
    batch = dedupe_last(out.batch)
    assert not out.rejected and len(batch) == 2 * 200 + 2  # 200 messages, 200 distinct times
    power = small_cluster.series_index[("s1", "em-01", "power_w")]
    rows = batch.series_idx == power
    assert batch.ts_ms[rows].tolist() == list(range(NOW, NOW + 200))  # receipt order kept
    assert batch.values[rows].tolist() == [float(i) for i in range(200)]

    # The broker redelivers three of them (DUP) after a reconnect, and a process restart:
    # the copies land on the times given the first time, so they overwrite, not duplicate.
    stamper.flush()
    stamper.close()
    again = ReceiptStamper(tmp_path / "stamps.jsonl")
    assert again.load() == 201
    later = NOW + 60_000
    copies = [Msg(t, p, i + 1, recv_ms=later, dup=True) for i, (t, p) in enumerate(UNTIMED[:3])]
    fresh = Msg(UNTIMED[0][0], UNTIMED[0][1], 1, recv_ms=later)  # not DUP: a new message
    out = prepare(  # type: ignore[arg-type]
        [*copies, fresh], router, small_cluster.series, LIMITS, now_ms=later, stamper=again
    )
    rows = out.batch.series_idx == power
    assert out.batch.ts_ms[rows].tolist() == [NOW, NOW + 1, NOW + 2, later]


def test_retained_copies_are_not_stored_again_at_a_new_time(small_cluster: Cluster) -> None:
    router = TopicRouter(small_cluster, "eco")
    untimed = orjson.dumps({"m": {"power_w": 5.0}})
    timed = orjson.dumps({"ts": NOW - 5000, "m": {"power_w": 6.0}})
    for stamper in (None, ReceiptStamper()):
        burst = [
            Msg("eco/s1/em-01/data", untimed, 1, retain=True),
            Msg("eco/s1/em-02/data", untimed, 2, retain=True),
            Msg("eco/s2/em-02/data", timed, 3, retain=True),
        ]
        out = prepare(burst, router, small_cluster.series, LIMITS, now_ms=NOW, stamper=stamper)  # type: ignore[arg-type]
        assert out.batch.ts_ms.tolist() == [NOW - 5000]  # its own time: an idempotent copy
        assert out.kinds["retained_untimed"] == 1  # counted, not stored, not dead-lettered
        assert [r.reason for r in out.rejected] == [Reason.UNKNOWN_METER]


# -- plausibility (#5), poison messages (#7) --------------------------------------------------------
def test_physically_impossible_values_are_rejected_with_a_reason(small_cluster: Cluster) -> None:
    router = TopicRouter(small_cluster, "eco")
    ts = NOW - 1000
    burst = [
        msg("eco/s1/em-01/data", orjson.dumps({"ts": ts, "m": {"power_w": 1e308}})),
        msg("eco/s1/em-01/data", orjson.dumps({"ts": ts + 1, "m": {"power_w": -1e308}}), 1),
        msg("eco/s2/aq-01/data", orjson.dumps({"ts": ts, "m": {"pm10_ugm3": -1e6}}), 2),
        msg("eco/s2/aq-01/data", orjson.dumps({"ts": ts + 1, "m": {"rh_pct": 140}}), 3),
        msg("eco/s1/em-01/data", orjson.dumps({"ts": ts + 2, "m": {"energy_kwh": -3.0}}), 4),
        msg("eco/s1/em-01/data", orjson.dumps({"ts": ts + 3, "m": {"power_w": -2500.0}}), 5),
        msg("eco/s2/aq-01/data", orjson.dumps({"ts": ts + 2, "m": {"temp_c": -12.5}}), 6),
    ]
    out = prepare(burst, router, small_cluster.series, LIMITS, now_ms=NOW)
    assert sorted(out.batch.values.tolist()) == [-2500.0, -12.5]  # PV export, a cold day
    assert [r.reason for r in out.rejected] == [Reason.IMPLAUSIBLE] * 5
    assert "physical bounds" in out.rejected[0].text


def test_a_timestamp_in_the_wrong_unit_says_so(small_cluster: Cluster) -> None:
    router = TopicRouter(small_cluster, "eco")
    burst = [
        msg("eco/s1/em-01/data", orjson.dumps({"ts": NOW // 1000, "m": {"power_w": 1.0}})),
        msg("eco/s1/em-01/data", orjson.dumps({"ts": NOW * 1_000_000, "m": {"power_w": 1.0}}), 1),
    ]
    texts = [
        r.text for r in prepare(burst, router, small_cluster.series, LIMITS, now_ms=NOW).rejected
    ]
    assert "epoch seconds" in texts[0] and "epoch nanoseconds" in texts[1]


class _Exploding(dict):  # type: ignore[type-arg]
    def get(self, *args: object) -> object:
        raise RuntimeError("boom\nwith a newline")


def test_an_exception_in_one_message_dead_letters_it_and_the_rest_go_on(
    small_cluster: Cluster,
) -> None:
    router = TopicRouter(small_cluster, "eco")
    poisoned = router.route("eco/s1/wm-01/data")
    assert not isinstance(poisoned, PayloadError)
    router._cache["eco/s1/wm-01/data"] = Route(  # a bug in routing or decoding, simulated
        poisoned.kind, poisoned.org, poisoned.site, poisoned.meter, _Exploding(power_w=0)
    )
    burst = [
        msg("eco/s1/em-01/data", orjson.dumps({"ts": NOW, "m": {"power_w": 1.0}})),
        msg("eco/s1/wm-01/data", orjson.dumps({"ts": NOW, "m": {"flow_lpm": 2.0, "x": 1}}), 1),
        msg("eco/s1/em-01/data", orjson.dumps({"ts": NOW - 1, "m": {"power_w": 3.0}}), 2),
    ]
    out = prepare(burst, router, small_cluster.series, LIMITS, now_ms=NOW)
    assert out.batch.values.tolist() == [1.0, 3.0]
    assert [(r.reason, r.msg_idx) for r in out.rejected] == [(Reason.INTERNAL, 1)]
    assert "boom" in out.rejected[0].text and "\n" not in out.rejected[0].text


json_docs = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(st.characters(codec=None), max_size=6),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["ts", "m", "bn", "bt", "n", "v", "t", "u", "power_w", "x_"])
            | st.text(max_size=4),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)
any_topic = topics | st.text(max_size=20)


_FUZZ_DIR: dict[str, Path] = {}


def _any_payload(doc: object) -> bytes:
    import json

    try:
        return json.dumps(doc, ensure_ascii=True, allow_nan=True).encode()  # lone surrogates too
    except (ValueError, RecursionError):
        return b"null"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(any_topic, st.binary(max_size=64) | json_docs.map(_any_payload), st.booleans()),
        max_size=6,
    ),
    st.booleans(),
)
def test_fuzz_the_whole_core_never_raises(
    small_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory, items: list, receipt: bool
) -> None:
    """Arbitrary bytes and arbitrary JSON through decode → checks → registers → dead-letter
    log → line protocol and spool encoding: nothing raises, nothing is half-accounted."""
    work = _FUZZ_DIR.setdefault("dir", tmp_path_factory.mktemp("fuzz"))
    for old in work.glob("*"):
        old.unlink()
    router = TopicRouter(small_cluster, "eco")
    tracker = RegisterTracker(small_cluster)
    log = DeadLetterLog(work / "dl.jsonl", max_bytes=1 << 20)
    burst = [Msg(t, p, i + 1, retain=r) for i, (t, p, r) in enumerate(items)]
    stamper = ReceiptStamper() if receipt else None
    out = prepare(burst, router, small_cluster.series, LIMITS, now_ms=NOW, stamper=stamper)  # type: ignore[arg-type]
    assert not any(r.reason is Reason.INTERNAL for r in out.rejected), out.rejected
    batch, _ = tracker.apply(dedupe_last(out.batch))
    record_rejections(log, out.rejected)
    encode_lines(batch)
    decode_batch(encode_batch(batch))
    assert np.isfinite(batch.values).all()
    entries = log.entries()
    log.close()
    assert len(entries) == len({r.msg_idx for r in out.rejected})  # one entry per message


def test_the_topic_cache_is_bounded_in_bytes(small_cluster: Cluster) -> None:
    router = TopicRouter(small_cluster, "eco")
    for i in range(3000):  # 3,000 distinct 60 KB topics: 180 MB if kept
        router.route(f"eco/{i}/" + "x" * 60_000)
    assert router._cache_bytes <= 8 * 1024 * 1024
    assert sum(map(len, router._cache)) == router._cache_bytes
    assert not isinstance(router.route("eco/s1/em-01/data"), PayloadError)
