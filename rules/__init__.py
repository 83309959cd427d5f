"""Rules: the numpy hot window and the vectorised rule engine. Second stage.

    engine = RuleEngine(load_cluster("cluster.yml"))
    engine.ingest(batch); transitions = engine.tick(now_ms)

`RulesStage` wraps the engine for `ecocluster run` (a `ReadingSink` that ticks and emits
`Transition`s to a queue or over MQTT); `run_backtest` replays stored history.
"""

from __future__ import annotations

from ecocluster.rules.backtest import BacktestResult, Episode, run_backtest
from ecocluster.rules.engine import ReloadReport, RuleEngine
from ecocluster.rules.publish import MqttTransitionPublisher, alert_topic, alerts_filter
from ecocluster.rules.stage import RulesStage
from ecocluster.rules.transitions import Transition
from ecocluster.rules.window import HotWindow, WindowConfig

__all__ = [
    "BacktestResult",
    "Episode",
    "HotWindow",
    "MqttTransitionPublisher",
    "ReloadReport",
    "RuleEngine",
    "RulesStage",
    "Transition",
    "WindowConfig",
    "alert_topic",
    "alerts_filter",
    "run_backtest",
]
