"""Codecs: native JSON and SenML, per-reading rejection, unit conversion, and fuzzing."""

from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecocluster.ingest.codecs import Columns, decode_native, decode_senml
from ecocluster.ingest.units import MOLAR_VOLUME_L, conversion_for

SERIES = {
    "energy_kwh": 0,
    "power_w": 1,
    "no2_ugm3": 2,
    "co_mgm3": 3,
    "flow_lpm": 4,
    "water_m3": 5,
    "temp_c": 6,
}
NOW = 1_732_470_000_000


def native(doc: object, *, untimed: bool = False) -> Columns:
    out = Columns()
    payload = orjson.dumps(doc) if not isinstance(doc, bytes) else doc
    decode_native(payload, 0, SERIES, out, untimed=untimed)
    return out


def senml(doc: object, *, untimed: bool = False, meter: str = "em-01") -> Columns:
    out = Columns()
    payload = orjson.dumps(doc) if not isinstance(doc, bytes) else doc
    decode_senml(payload, 0, SERIES, out, meter=meter, untimed=untimed)
    return out


def reasons(out: Columns) -> list[str]:
    return [r.reason.value for r in out.rejections]


def test_native_object_and_array() -> None:
    out = native({"ts": 1732470000123, "m": {"energy_kwh": 10234.52, "power_w": 5230}})
    assert out.series_idx == [0, 1] and out.ts_ms == [1732470000123] * 2
    assert out.values == [10234.52, 5230.0] and not out.rejections
    out = native([{"ts": 1, "m": {"power_w": 1.0}}, {"m": {"power_w": 2.0, "temp_c": 3.0}}])
    assert out.ts_ms == [1] and reasons(out) == ["no_time"]  # policy "reject": counted
    assert out.rejections[0].count == 2
    out = native([{"ts": 1, "m": {"power_w": 1.0}}, {"m": {"power_w": 2.0}}], untimed=True)
    assert out.ts_ms == [1, 0] and out.relative_rows == [1]  # offset from the receipt stamp


def test_native_bad_readings_never_take_neighbours_down() -> None:
    payload = b'{"ts": 5, "m": {"power_w": NaN, "energy_kwh": 1.5, "temp_c": "hot", "co2_ppm": 400, "volts": 230, "flow_lpm": true}}'
    out = native(payload)
    assert out.values[1:] == [1.5] and math.isnan(out.values[0])  # NaN is caught later, on arrays
    assert sorted(reasons(out)) == [
        "not_a_number",
        "not_a_number",
        "undeclared_quantity",
        "unknown_quantity",
    ]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "not_json"),
        (b"42", "schema"),
        (b"[]", "schema"),
        (b'{"ts": 1}', "schema"),
        (b'{"ts": "yesterday", "m": {"power_w": 1}}', "bad_time"),
        (b'{"ts": true, "m": {"power_w": 1}}', "bad_time"),
        (b"\xff\xfe", "not_utf8"),
        (b'{"ts": 1e306, "m": {"power_w": 1}}', "bad_time"),
    ],
)
def test_native_rejections(payload: bytes, reason: str) -> None:
    out = native(payload)
    assert len(out) == 0 and reasons(out) == [reason]


def test_senml_resolves_base_fields_and_converts_units() -> None:
    out = senml(
        [
            {
                "bn": "urn:dev:eco:s1:em-01:",
                "bt": 1767225600,
                "bu": "W",
                "n": "energy",
                "u": "Wh",
                "v": 1234500,
            },
            {"n": "power", "v": 4.5, "u": "kW", "t": -60},
            {"n": "power", "v": 4120.5},
            {"n": "flow", "u": "m3/h", "v": 3.0},
            {"n": "water", "u": "l", "v": 1500},
        ]
    )
    assert not out.rejections
    assert out.series_idx == [0, 1, 1, 4, 5]
    assert out.ts_ms == [1767225600000, 1767225540000, 1767225600000, 1767225600000, 1767225600000]
    assert out.values == pytest.approx([1234.5, 4500.0, 4120.5, 50.0, 1.5])


def test_senml_relative_time_follows_the_policy() -> None:
    doc = [{"n": "power_w", "v": 1, "t": -5}, {"n": "power_w", "v": 2}, {"n": "temp_c", "v": 3}]
    out = senml(doc)
    assert len(out) == 0 and reasons(out) == ["no_time"] * 3
    out = senml(doc, untimed=True)
    assert out.ts_ms == [-5000, 0, 0] and out.relative_rows == [0, 1, 2]
    out = senml([{"bt": 1767225600, "n": "power_w", "v": 1, "t": -5}])
    assert out.ts_ms == [1767225595000] and not out.relative_rows  # relative to an absolute bt


@pytest.mark.parametrize(
    "payload",
    [
        b'\xef\xbb\xbf{"ts": 5, "m": {"power_w": 1}}',
        '{"ts": 5, "m": {"power_w": 1}}'.encode("utf-16"),
        '{"ts": 5, "m": {"power_w": 1}}'.encode("utf-16-le"),
        '{"ts": 5, "m": {"power_w": 1}}'.encode("utf-32"),
        '{"ts": 5, "m": {"power_w": 1}}'.encode("utf-32-be"),
        b'{"ts": 5, "m": {"power_w": NaN, "temp_c": "\xe9"}}',
        '{"ts": 5, "m": {"power_w": NaN}}'.encode("utf-16"),
    ],
)
def test_json_that_is_not_utf8_is_refused(payload: bytes) -> None:
    for out in (native(payload), senml(payload)):
        assert len(out) == 0 and reasons(out) == ["not_utf8"]


@pytest.mark.parametrize(
    "payload",
    [
        b'{"ts": 5, "m": {"power_\\ud800": 1, "temp_c": 2}}',
        b'{"ts": 5, "m": {"\\udfff": NaN}}',
        b'[{"n": "power\\ud800", "v": 1}]',
        b'[{"bn": "\\ud800", "n": "power", "v": NaN}]',
    ],
)
def test_lone_surrogates_reject_the_message_and_never_raise(payload: bytes) -> None:
    for out in (native(payload), senml(payload)):
        assert len(out) == 0 and reasons(out) == ["not_json"]
        assert "surrogate" in out.rejections[0].message


def test_senml_names_bind_to_the_topics_meter() -> None:
    out = senml(
        [
            {"bn": "urn:dev:eco:s1:em-01:", "bt": 1767225600, "n": "power", "v": 1.0},
            {"bn": "urn:dev:eco:s1:em-02:", "n": "power", "v": 2.0},
            {"bn": "em-02/", "n": "energy", "v": 3.0},
            {"bn": "", "n": "em-01:power", "v": 4.0},
            {"n": "power", "v": 5.0},
            {"n": "-bad name", "v": 6.0},
        ]
    )
    assert out.values == [1.0, 4.0, 5.0]
    assert reasons(out) == ["wrong_meter", "wrong_meter", "schema"]
    assert "em-02" in out.rejections[0].message


def test_senml_must_understand_labels_reject_the_pack() -> None:
    out = senml(
        [
            {"bt": 1767225600, "n": "power", "v": 1.0},
            {"n": "power", "v": 2.0, "t": 1, "ct_": "60"},
            {"n": "energy", "v": 3.0},
        ]
    )
    assert len(out) == 0 and reasons(out) == ["schema"]
    assert out.rejections[0].count == 3 and "ct_" in out.rejections[0].message


def test_senml_huge_times_are_rejected_not_raised() -> None:
    out = senml([{"bt": 1e306, "n": "power", "v": 1.0}, {"n": "power", "v": 1.0, "t": 1e300}])
    assert len(out) == 0 and reasons(out) == ["bad_time", "bad_time"]


def test_gas_mixing_ratios_at_eu_reference_conditions() -> None:
    assert pytest.approx(24.06, abs=0.01) == MOLAR_VOLUME_L
    out = senml(
        [{"bt": 1767225600, "n": "no2", "u": "ppb", "v": 10}, {"n": "co", "u": "ppm", "v": 1}]
    )
    assert out.values == pytest.approx([19.12, 1.164], rel=1e-3)
    assert conversion_for("o3_ugm3", "ppb").scale == pytest.approx(1.995, rel=1e-3)  # type: ignore[union-attr]
    assert conversion_for("so2_ugm3", "ppb").scale == pytest.approx(2.663, rel=1e-3)  # type: ignore[union-attr]
    assert conversion_for("temp_c", "K") == (("temp_c", 1.0, -273.15))


def test_senml_rejections_are_per_record() -> None:
    out = senml(
        [
            {"bn": "urn:x:em-01:", "bt": 1767225600, "n": "power", "u": "W", "v": 1.0},
            {"n": "power", "u": "furlong", "v": 1.0},
            {"n": "speed", "v": 1.0},
            {"n": "pm10", "u": "ug/m3", "v": 3},
            {"n": "power", "vs": "high"},
            {"n": "power", "v": True},
            {"n": "power", "v": 1, "t": "noon"},
            "not a record",
        ]
    )
    assert out.values == [1.0]
    assert reasons(out) == [
        "unit",
        "unknown_quantity",
        "undeclared_quantity",
        "not_a_number",
        "not_a_number",
        "bad_time",
        "schema",
    ]


# -- fuzzing ----------------------------------------------------------------------------------
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
names = st.sampled_from([*SERIES, "co2_ppm", "power", "energy", "no2", "x", ""])
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
native_docs = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"m": st.dictionaries(names, scalars, max_size=5)}, optional={"ts": scalars}
    ),
    st.lists(
        st.fixed_dictionaries(
            {"m": st.dictionaries(names, scalars, max_size=4)}, optional={"ts": scalars}
        ),
        max_size=4,
    ),
)
senml_records = st.fixed_dictionaries(
    {},
    optional={
        "bn": st.sampled_from(["", "urn:dev:x:", 5]),
        "bt": scalars,
        "bu": st.sampled_from(["W", "kW", "ppb", None, 3]),
        "n": names,
        "u": st.sampled_from(["W", "Wh", "l", "m3/h", "ppm", "ppb", "K", "?"]),
        "v": scalars,
        "vs": st.text(max_size=3),
        "t": scalars,
    },
)


def _dump(doc: object) -> bytes:
    try:
        return orjson.dumps(doc)
    except TypeError:  # integers beyond 64 bits: hand-made JSON
        import json

        return json.dumps(doc).encode()


def _readings_in(doc: object) -> int | None:
    """How many (object, quantity) readings a well-formed native payload holds."""
    items = doc if isinstance(doc, list) else [doc]
    if (
        not all(isinstance(i, dict) and isinstance(i.get("m"), dict) and i["m"] for i in items)
        or not items
    ):
        return None
    return sum(len(i["m"]) for i in items)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(native_docs | st.binary(max_size=40))
def test_fuzz_native_every_reading_is_kept_or_rejected(doc: object) -> None:
    payload = doc if isinstance(doc, bytes) else _dump(doc)
    out = Columns()
    decode_native(payload, 0, SERIES, out, untimed=True)  # never raises
    assert len(out) == len(out.values) == len(out.series_idx) == len(out.msg)
    assert len(out) or out.rejections
    expected = None if isinstance(doc, bytes) else _readings_in(doc)
    if expected is not None:
        assert len(out) + sum(r.count for r in out.rejections) == expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(senml_records, max_size=5) | json_values | st.binary(max_size=40))
def test_fuzz_senml_every_record_is_kept_or_rejected(doc: object) -> None:
    payload = doc if isinstance(doc, bytes) else _dump(doc)
    out = Columns()
    decode_senml(payload, 0, SERIES, out, meter="em-01", untimed=True)  # never raises
    must_understand = (
        any(isinstance(r, dict) and any(k.endswith("_") for k in r) for r in doc or ())
        if isinstance(doc, list)
        else False
    )
    if (
        isinstance(doc, list)
        and doc
        and all(isinstance(r, dict) for r in doc)
        and not must_understand
    ):
        valued = sum(1 for r in doc if any(k in r for k in ("v", "vs", "vb", "vd", "s", "n")))
        assert len(out) + len(out.rejections) >= valued
        assert len(out) <= sum(1 for r in doc if "v" in r)
    for ts in out.ts_ms:
        assert isinstance(ts, int)
