"""Rule config errors: one exact message per mistake, with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ecocluster.core.registry import load_cluster
from ecocluster.core.yamlsource import ConfigError
from ecocluster.rules.engine import RuleEngine
from tests.rules.conftest import BASE


def errors_of(tmp_path: Path, rule_text: str) -> list[str]:
    head = yaml.safe_dump(BASE, sort_keys=False)
    path = tmp_path / "c.yaml"
    path.write_text(head + "rules:\n" + rule_text)
    with pytest.raises(ConfigError) as info:
        RuleEngine(load_cluster(path))
    first = head.count("\n") + 2  # the line of the first rule
    out = []
    for issue in info.value.issues:
        assert issue.location is not None and issue.location.file == str(path)
        offset = issue.location.line - first
        where = "F:L" if offset == 0 else f"F:L+{offset}"
        out.append(str(issue).replace(f"{path}:{issue.location.line}", where))
    return out


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            "{name: a, type: threshold, quantity: power_w, abov: 5}",
            "F:L rules[0].abov: unknown field for this rule type",
        ),
        (
            "{name: a, type: threshold, quantity: power_w, above: lots}",
            "F:L rules[0].above: must be a number, 'contracted', or severities to numbers "
            "({warning: 50, critical: 80}) (got 'lots')",
        ),
        (
            "{name: a, type: threshold, quantity: power_w}",
            "F:L rules[0]: a threshold needs `above`, `below` or both (a band)",
        ),
        (
            "{name: a, type: threshold, quantity: power_w, above: 5, clear: 9}",
            "F:L rules[0]: `clear` must be on the safe side of the limit (hysteresis)",
        ),
        (
            "{name: a, type: threshold, quantity: power_w, above: 5, window: 3d}",
            "F:L rules[0].window: window exceeds the hot window's horizon of 24.75h",
        ),
        (
            "{name: a, type: threshold, quantity: power_w, above: 5, match: {severity: critical}}",
            "F:L rules[0].match: a rule cannot match on 'severity' "
            "(rules match on: category, meter, org, quantity, site)",
        ),
        (
            "{name: a, type: threshold, above: 5, scope: site}",
            "F:L rules[0]: scope 'site' needs a quantity (sums must add like units)",
        ),
        (
            "{name: a, type: threshold, quantity: flow_lpm, above: contracted}",
            "F:L rules[0].above: `contracted` compares power: use quantity power_w",
        ),
        (
            "{name: a, type: burst, quantity: flow_lpm}",
            "F:L rules[0]: a burst needs `jump` (absolute) or `factor` (relative), or both",
        ),
        (
            "{name: a, type: rate, quantity: power_w}",
            "F:L rules[0]: a rate rule needs `rises`, `drops` or both (positive amounts)",
        ),
        (
            "{name: a, type: night_flow, quantity: flow_lpm, nights: 9}",
            "F:L rules[0].nights: at most 8 nights are kept",
        ),
        (
            "{name: a, type: threshold, quantity: power_w, above: 5, active: [{from: '25:00'}]}",
            "F:L rules[0].active[0].from: invalid time of day '25:00': use HH:MM, e.g. '22:30'",
        ),
    ],
)
def test_one_message_per_mistake(tmp_path: Path, rule: str, message: str) -> None:
    assert errors_of(tmp_path, f"  - {rule}\n") == [message]


def test_every_bad_rule_is_reported_on_its_own_line(tmp_path: Path) -> None:
    text = (
        "  - {name: a, type: threshold, quantity: power_w, abov: 5}\n"
        "  - {name: b, type: threshold, quantity: power_w, above: 5}\n"
        "  - {name: c, type: stuck, quantity: power_w, window: 2d}\n"
    )
    assert errors_of(tmp_path, text) == [
        "F:L rules[0].abov: unknown field for this rule type",
        "F:L+2 rules[2].window: window exceeds the hot window's horizon of 24.75h",
    ]
