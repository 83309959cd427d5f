"""`ecocluster eval`: a scenario through the real pipeline, scored against the simulator's
ground truth (composition level: it may import every stage and the simulator).

    results = await evaluate(cluster, settings, EvalOptions(scenario="stress-mix", seeds=[1]))
    summary = summarise([r.score for r in results])

Modules: `run` drives the node, `drive` the simulator and the event-time ticks, `score`
and `ingest_checks` score (pure; `score` is shared with bench/detection.py), `report` and
`plots` write the results, `cli` is the command.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "DETECTORS",
    "HANDLED_BY_INGEST",
    "EvalOptions",
    "Firing",
    "RunResult",
    "RunScore",
    "Summary",
    "evaluate",
    "score_run",
    "summarise",
]
#: Imported on first use: `ecocluster --help` must not pay for the node and the simulator.
_HOME = {
    "EvalOptions": "run",
    "RunResult": "run",
    "evaluate": "run",
    "DETECTORS": "score",
    "HANDLED_BY_INGEST": "score",
    "Firing": "score",
    "RunScore": "score",
    "Summary": "score",
    "score_run": "score",
    "summarise": "score",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
