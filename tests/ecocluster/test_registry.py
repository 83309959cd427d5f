"""The cluster file: every rejection names file, line and field path; all errors at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ecocluster.core.registry import Cluster, ConfigError, load_cluster

VALID = """\
territory: {id: appennino, name: "Eco-Cluster Appennino", timezone: Europe/Rome}
organisations:
  - {id: parco, name: "Ente Parco", kind: public}
  - {id: hotel-lago, name: "Hotel al Lago srl", kind: private}
sites:
  - {id: cerreto-hotel, org: hotel-lago, name: "Hotel al Lago", category: hotel, lat: 44.29, lon: 10.24}
  - {id: sede-parco, org: parco, name: "Sede del Parco", category: office, lat: 44.41, lon: 10.39}
meters:
  - {id: em-01, site: cerreto-hotel, quantities: [energy_kwh, power_w], interval: 1m}
  - {id: wm-01, site: cerreto-hotel, quantities: [water_m3, flow_lpm]}
  - {id: em-01, site: sede-parco, quantities: [energy_kwh, power_w]}
contacts:
  - {id: rossi, name: "Mario Rossi", org: parco, roles: [emergency_coordinator],
     notify: ["mailto://user:secretpw@smtp.example.org?to=rossi@example.org"], language: it}
  - {id: park-duty, name: "Turno Parco", org: parco, roles: [duty_officer]}
rules:
  - {name: power-overload, type: threshold, quantity: power_w, above: 60000, for: 2m,
     severity: critical, match: {category: hotel}}
routes:
  - {match: {severity: critical}, notify: [rossi], escalate: critical-chain}
escalations:
  - {name: critical-chain, steps: [{after: 10m, notify: [park-duty]}]}
"""


def write(tmp_path: Path, text: str, name: str = "cluster.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_cluster(path)
    return [str(issue) for issue in info.value.issues]


def replace_line(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def test_valid_file_loads_with_lookups(tmp_path: Path) -> None:
    cluster = load_cluster(write(tmp_path, VALID))
    assert isinstance(cluster, Cluster)
    assert cluster.territory.timezone == "Europe/Rome"
    assert cluster.meter("cerreto-hotel", "em-01").quantities == ["energy_kwh", "power_w"]  # type: ignore[union-attr]
    assert cluster.meter("sede-parco", "em-01") is not None
    assert cluster.meter("cerreto-hotel", "nope") is None
    assert [s.id for s in cluster.sites_of("parco")] == ["sede-parco"]
    assert [m.id for m in cluster.meters_of("cerreto-hotel")] == ["em-01", "wm-01"]
    assert cluster.org_of_site("cerreto-hotel") == "hotel-lago"
    assert len(cluster.series) == 6
    assert cluster.series_index[("cerreto-hotel", "wm-01", "flow_lpm")] == 3
    assert cluster.series[3].org == "hotel-lago"
    assert cluster.meter("cerreto-hotel", "em-01").interval.total_seconds() == 60  # type: ignore[union-attr]
    assert cluster.rules[0].for_.total_seconds() == 120  # type: ignore[union-attr]
    assert cluster.rules[0].model_extra == {"above": 60000}
    assert "6 series" in cluster.summary()


def test_secrets_are_hidden_in_repr(tmp_path: Path) -> None:
    cluster = load_cluster(write(tmp_path, VALID))
    assert "secretpw" not in repr(cluster)
    assert "secretpw" not in str(cluster.contacts[0])
    assert "secretpw" in cluster.contacts[0].notify[0].get_secret_value()


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "lat: 44.29, lon: 10.24}",
            "lat: 44.29, lon: 10.24, colour: red}",
            ":6 sites[0].colour: unknown field",
            id="unknown-key",
        ),
        pytest.param(
            "{id: wm-01, site: cerreto-hotel",
            "{id: em-01, site: cerreto-hotel",
            ":10 meters[1].id: duplicate meter id on this site 'cerreto-hotel'/'em-01' (first at line 9)",
            id="duplicate-meter",
        ),
        pytest.param(
            "{id: park-duty,",
            "{id: rossi,",
            ":15 contacts[1].id: duplicate contact id 'rossi' (first at line 13)",
            id="duplicate-contact",
        ),
        pytest.param(
            "{id: wm-01, site: cerreto-hotel",
            "{id: wm-01, site: cerreto-hotal",
            ":10 meters[1].site: unknown site 'cerreto-hotal' (known: cerreto-hotel, sede-parco)",
            id="meter-on-unknown-site",
        ),
        pytest.param(
            'org: parco, name: "Sede del Parco"',
            'org: parko, name: "Sede del Parco"',
            ":7 sites[1].org: unknown organisation 'parko' (known: hotel-lago, parco)",
            id="site-of-unknown-org",
        ),
        pytest.param(
            "notify: [rossi], escalate",
            "notify: [rosi], escalate",
            ":20 routes[0].notify[0]: unknown contact 'rosi' (known: park-duty, rossi)",
            id="route-unknown-contact",
        ),
        pytest.param(
            "escalate: critical-chain}",
            "escalate: critical-chian}",
            ":20 routes[0].escalate: unknown escalation 'critical-chian' (known: critical-chain)",
            id="route-unknown-escalation",
        ),
        pytest.param(
            "{id: wm-01,",
            '{id: "wm,01 x=1",',
            ":10 meters[1].id: invalid id 'wm,01 x=1'",
            id="bad-id-line-protocol-specials",
        ),
        pytest.param(
            "quantities: [water_m3, flow_lpm]",
            "quantities: [water_m3, flow_ls]",
            ":10 meters[1].quantities[1]: unknown quantity 'flow_ls'",
            id="unknown-quantity",
        ),
        pytest.param(
            '{id: hotel-lago, name: "Hotel al Lago srl", kind: private}',
            "{id: hotel-lago, kind: private}",
            ":4 organisations[1].name: missing required field",
            id="missing-field",
        ),
        pytest.param(
            "lat: 44.29, lon: 10.24}",
            "lat: north, lon: 10.24}",
            ":6 sites[0].lat: Input should be a valid number",
            id="wrong-type",
        ),
        pytest.param(
            "match: {category: hotel}}",
            "match: {category: hotell}}",
            ":18 rules[0].match.category: unknown category 'hotell'",
            id="rule-match-unknown-category",
        ),
        pytest.param(
            "match: {category: hotel}}",
            "match: {colour: hotel}}",
            ":18 rules[0].match: a rule cannot match on 'colour'",
            id="rule-match-unknown-label",
        ),
        pytest.param(
            "type: threshold",
            "type: thresold",
            ":17 rules[0].type: Input should be 'threshold'",
            id="unknown-rule-type",
        ),
        pytest.param(
            "for: 2m,",
            "for: 2 minutes,",
            ":17 rules[0].for: invalid duration '2 minutes'",
            id="bad-duration",
        ),
        pytest.param(
            "timezone: Europe/Rome",
            "timezone: Europe/Roma",
            ":1 territory.timezone: unknown time zone 'Europe/Roma'",
            id="bad-timezone",
        ),
    ],
)
def test_each_rejection_names_file_line_and_field(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    path = write(tmp_path, replace_line(VALID, old, new))
    errors = errors_of(path)
    assert any(e.startswith(str(path) + expected) for e in errors), errors


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, replace_line(VALID, "kind: public}", "kind: public"))
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:4")
    assert "YAML syntax error" in error


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, replace_line(VALID, "kind: public}", "kind: public, kind: private}"))
    errors = errors_of(path)
    assert any(e.startswith(f"{path}:3 organisations[0].kind: duplicate key") for e in errors)


def test_unknown_section_and_missing_territory(tmp_path: Path) -> None:
    text = VALID.replace(VALID.splitlines()[0] + "\n", "").replace("sites:", "sitez:")
    errors = errors_of(write(tmp_path, text))
    assert any("sitez: unknown section" in e for e in errors)
    assert any("territory: missing required section" in e for e in errors)


def test_all_errors_are_reported_at_once(tmp_path: Path) -> None:
    text = VALID
    text = replace_line(text, "lat: 44.29, lon: 10.24}", "lat: 44.29, lon: 10.24, x: 1}")
    text = replace_line(text, "{id: wm-01, site: cerreto-hotel", "{id: wm-01, site: nowhere")
    text = replace_line(text, "notify: [rossi], escalate", "notify: [rosi], escalate")
    errors = errors_of(write(tmp_path, text))
    assert len(errors) == 3
    assert [e.split()[0].rsplit(":", 1)[1] for e in errors] == ["6", "10", "20"]


def test_a_broken_item_still_has_its_references_checked(tmp_path: Path) -> None:
    text = replace_line(
        VALID,
        "{id: wm-01, site: cerreto-hotel, quantities: [water_m3, flow_lpm]}",
        "{id: wm-01, site: nowhere, quantities: [water_m3, flow_xx]}",
    )
    errors = errors_of(write(tmp_path, text))
    assert any("meters[1].site: unknown site 'nowhere'" in e for e in errors)
    assert any("meters[1].quantities[1]: unknown quantity" in e for e in errors)


def test_include_merges_files_and_errors_name_the_included_file(tmp_path: Path) -> None:
    lines = VALID.splitlines(keepends=True)
    meters_at = lines.index("meters:\n")
    contacts_at = lines.index("contacts:\n")
    root_text = "".join(lines[:meters_at] + lines[contacts_at:])
    meters_text = "".join(lines[meters_at:contacts_at])
    write(tmp_path, meters_text.replace("site: sede-parco", "site: sede-parko"), "meters.yaml")
    root = write(tmp_path, "include: [meters.yaml]\n" + root_text)
    errors = errors_of(root)
    assert errors == [
        f"{tmp_path / 'meters.yaml'}:4 meters[2].site: unknown site 'sede-parko' "
        "(known: cerreto-hotel, sede-parco)"
    ]
    write(tmp_path, meters_text, "meters.yaml")
    assert len(load_cluster(root).meters) == 3


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    errors = errors_of(tmp_path / "nope.yaml")
    assert "nope.yaml" in errors[0]


def test_example_cluster_is_valid_and_realistic(example_cluster_path: Path) -> None:
    cluster = load_cluster(example_cluster_path)
    assert len(cluster.organisations) >= 10
    assert {o.kind for o in cluster.organisations} >= {"public", "private"}
    assert len(cluster.sites) >= 25
    assert len(cluster.meters) >= 80
    quantities = {q for m in cluster.meters for q in m.quantities}
    assert {"energy_kwh", "water_m3", "pm10_ugm3", "no2_ugm3"} <= quantities
    assert cluster.rules and cluster.routes and cluster.escalations
    for site in cluster.sites:
        assert 44.0 < site.lat < 44.7 and 9.9 < site.lon < 10.7, site.id
        assert cluster.meters_of(site.id), f"site {site.id} has no meter"
