from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from ecocluster.rules.config import ActiveWindow, is_active_at

ROME = ZoneInfo("Europe/Rome")


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


@pytest.mark.parametrize(
    ("spec", "when", "expected"),
    [
        ({"from": "08:00", "to": "18:00"}, "2026-01-12T07:59+01:00", False),
        ({"from": "08:00", "to": "18:00"}, "2026-01-12T08:00+01:00", True),
        ({"from": "08:00", "to": "18:00"}, "2026-01-12T18:00+01:00", False),
        ({"days": ["sat", "sun"]}, "2026-01-12T12:00+01:00", False),  # a Monday
        ({"days": ["sat", "sun"]}, "2026-01-11T12:00+01:00", True),
        # crossing midnight: Friday 22:00 → Saturday 06:00 belongs to Friday's window
        ({"days": ["fri"], "from": "22:00", "to": "06:00"}, "2026-01-16T23:00+01:00", True),
        ({"days": ["fri"], "from": "22:00", "to": "06:00"}, "2026-01-17T05:00+01:00", True),
        ({"days": ["fri"], "from": "22:00", "to": "06:00"}, "2026-01-16T05:00+01:00", False),
        # local time: 07:30 UTC is 08:30 in Rome in winter
        ({"from": "08:00", "to": "09:00"}, "2026-01-12T07:30+00:00", True),
    ],
)
def test_active_windows_in_local_time(spec: dict[str, object], when: str, expected: bool) -> None:
    assert is_active_at([ActiveWindow.model_validate(spec)], ms(when), ROME) is expected


def test_unquoted_yaml_times_are_read_as_clock_times() -> None:
    raw = yaml.safe_load("{from: 8:30, to: 24:00}")
    assert raw == {"from": 510, "to": 1440}  # YAML 1.1 base-60 integers (08:30 stays text)
    window = ActiveWindow.model_validate(raw)
    assert window.start == time(8, 30) and window.end.hour == 23


def test_no_windows_means_always_active() -> None:
    assert is_active_at(None, 0, ROME) and is_active_at([], 0, ROME)


def test_bad_day_names_are_refused() -> None:
    with pytest.raises(ValidationError, match="days"):
        ActiveWindow.model_validate({"days": ["monday"]})


def test_the_kernel_knows_exactly_the_rule_types_the_catalog_has() -> None:
    from ecocluster.core.cluster import RULE_TYPES
    from ecocluster.rules.catalog import KERNELS

    tags = {model.model_fields["type"].annotation.__args__[0] for model in KERNELS}
    assert tags == set(RULE_TYPES)


def test_rule_base_extends_the_one_declared_rule_spec() -> None:
    from ecocluster.core.cluster import RuleSpec
    from ecocluster.rules.config import RuleBase

    assert issubclass(RuleBase, RuleSpec)
    declared_here = set(RuleBase.model_fields) - set(RuleSpec.model_fields)
    assert declared_here == {"keep_firing_for", "active", "flapping"}
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        RuleBase.model_validate({"name": "r", "type": "threshold", "colour": "red"})
