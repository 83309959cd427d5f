"""One node: the chosen stages in one asyncio TaskGroup (composition root; it may import
every stage, the stages never import each other backwards).

Stages expose `name` and `async def run(ready: asyncio.Event) -> None`. Data flows one way:
the ingest stage hands what it made durable to its `sinks` (`ecocluster.core.types.ReadingSink`),
so a rules stage joins by being built first and passed to ingest as a sink:

    rules = RulesStage(...)                      # implements ReadingSink
    ingest = IngestStage(cluster, settings, sinks=[rules])

`build_stages` is where the lead wires new stages in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from ecocluster.core.registry import Cluster
from ecocluster.core.settings import Settings
from ecocluster.core.types import ReadingSink

__all__ = ["STAGES", "Stage", "build_stages", "run_node"]

_log = logging.getLogger(__name__)

#: Every stage a node can run, in the direction of the data.
STAGES: tuple[str, ...] = ("ingest", "rules")


class Stage(Protocol):
    name: str

    async def run(self, ready: asyncio.Event) -> None: ...


def build_stages(
    cluster: Cluster,
    settings: Settings,
    only: Sequence[str] | None = None,
    *,
    sinks: Sequence[ReadingSink] = (),
) -> list[Stage]:
    """The stages to run (all when `only` is empty), wired to each other."""
    wanted = list(only) if only else list(STAGES)
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage {unknown[0]!r} (known: {', '.join(STAGES)})")
    if "rules" in wanted and "ingest" not in wanted:
        raise ValueError(
            "the rules stage is fed by ingest in the same node: run --only ingest,rules "
            "(relaying readings to separate rule workers over MQTT is not built yet)"
        )
    stages: list[Stage] = []
    sinks = list(sinks)
    if "rules" in wanted:
        stages.append(_rules_stage(cluster, settings))
        sinks.append(stages[-1])  # type: ignore[arg-type]
    if "ingest" in wanted:
        from ecocluster.ingest.stage import IngestStage

        stages.insert(0, IngestStage(cluster, settings, sinks=sinks))
    return stages


def _rules_stage(cluster: Cluster, settings: Settings) -> Stage:
    """Rules on wall time; until an alert stage runs in this node, transitions go out over
    MQTT (`{prefix}/_alerts/{site}/{rule}`, QoS 1) for an alert stage elsewhere."""
    from ecocluster.rules.publish import MqttTransitionPublisher
    from ecocluster.rules.stage import RulesStage

    publisher = MqttTransitionPublisher(
        settings.mqtt, prefix=settings.topic_prefix, client_id=f"{settings.mqtt_client_id}-rules"
    )
    return RulesStage(
        cluster,
        sinks=[publisher],
        config_path=cluster.source,
        snapshot_path=Path(settings.data_dir) / "rules-state.json",
        tick_s=settings.rules_tick_s,
    )


async def run_node(
    stages: Sequence[Stage],
    *,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Run `stages` until `stop` is set, SIGINT/SIGTERM arrives or a stage fails.

    Stopping cancels the stages; each flushes what it holds on its way out."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)
    try:
        async with asyncio.TaskGroup() as tasks:
            readies = []
            for stage in stages:
                ready = asyncio.Event()
                readies.append(ready)
                tasks.create_task(stage.run(ready), name=f"{stage.name}.run")

            async def announce() -> None:
                await asyncio.gather(*(r.wait() for r in readies))
                _log.info("node ready: %s", ", ".join(s.name for s in stages))
                if on_ready is not None:
                    on_ready()

            tasks.create_task(announce(), name="node.ready")
            await stop.wait()
            _log.info("stopping: %s", ", ".join(s.name for s in stages))
            raise _Stop
    except* _Stop:
        pass
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


class _Stop(Exception):
    """Raised inside the TaskGroup to cancel every stage."""
