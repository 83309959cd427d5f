"""Run a simulation against a broker: real time, accelerated, or backfill.

    sim = Simulation(plan, SimConfig(broker="mqtt://127.0.0.1:1883", speed=3600))
    sim.start()            # background thread (the demo); or sim.run() to block
    ...
    sim.stop(); sim.join()

`await sim.run_async()` runs it in a worker thread from asyncio and stops it cleanly when
the task is cancelled. Time modes:

- backfill (`start` and `end`): simulated time runs as fast as the broker takes it;
- paced (`speed`): simulated time = `start` + wall time x speed. Speed 1 is real time and
  starts now; above 1 the run starts (unless `start` is given) a week ago at midnight, so
  the accelerated readings are in the past and ingest does not reject them as future.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Literal

import numpy as np

from ecocluster.core.mqtt import MqttTls
from ecocluster.core.settings import MqttTarget, _parse_mqtt_url

from .devices import DeviceFleet
from .generate import Generator, SimBatch
from .payloads import Encoder, Message, PayloadFormat
from .plan import SimPlan
from .scenario import Scenario, resolve_faults
from .shared import SharedConnection

__all__ = ["SimConfig", "SimStats", "Simulation"]

_log = logging.getLogger(__name__)
_DAY_MS = 86_400_000


@dataclass
class SimConfig:
    broker: str = "mqtt://127.0.0.1:1883"
    prefix: str = "eco"
    fmt: PayloadFormat = "json"
    qos: int = 0
    mode: Literal["shared", "per-meter"] = "shared"
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    speed: float = 1.0
    start: datetime | None = None
    end: datetime | None = None
    duration_s: float | None = None
    scenario: Scenario | None = None
    truth_path: Path | None = None
    progress: bool = False
    client_id: str | None = None
    #: TLS for an `mqtts://` broker (CA, client certificate): `MqttTls.from_settings(…)`.
    tls: MqttTls | None = None

    @property
    def backfill(self) -> bool:
        return self.start is not None and self.end is not None


def _backfill_chunk_ms(plan: SimPlan, budget: int = 100_000) -> int:
    """Whole hours of simulated time worth about `budget` messages, 1 to 24 h. Generation
    has a fixed numpy cost per meter and chunk (24-h chunks generate ~3x faster than
    6-h ones for the example territory), while big territories must not hold millions
    of messages in memory; the chunk size never changes a value or the message order."""
    per_hour = sum(3_600_000 / min(m.intervals_ms) for m in plan.meters if m.intervals_ms)
    hours = int(budget // per_hour) if per_hour else 24
    return min(max(hours, 1), 24) * 3_600_000


@dataclass(frozen=True, slots=True)
class _Chunk:
    end_ms: int
    batch: SimBatch
    messages: list[Message]


@dataclass
class SimStats:
    messages: int = 0
    readings: int = 0
    faults: int = 0
    sim_start_ms: int = 0
    sim_end_ms: int = 0
    wall_s: float = 0.0
    #: How late each paced publish was (s), the most recent 200,000 (a day-long run
    #: must not grow without bound); `lag_max_s` covers the whole run.
    lags_s: deque[float] = field(default_factory=lambda: deque(maxlen=200_000), repr=False)
    lag_max_s: float = 0.0

    def lag_percentiles(self) -> dict[str, float]:
        if not self.lags_s:
            return {"p50": 0.0, "p99": 0.0, "max": self.lag_max_s}
        lags = np.asarray(self.lags_s)
        return {
            "p50": float(np.percentile(lags, 50)),
            "p99": float(np.percentile(lags, 99)),
            "max": self.lag_max_s,
        }


class Simulation:
    def __init__(self, plan: SimPlan, config: SimConfig) -> None:
        self.plan = plan
        self.config = config
        self.target: MqttTarget = _parse_mqtt_url(config.broker)
        self.encoder = Encoder(plan, prefix=config.prefix, fmt=config.fmt)
        self.stats = SimStats()
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.on_progress: Callable[[int, int], None] | None = None
        self._sent_through_ms: int | None = None

    # -- control ---------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the run to end; devices go offline cleanly. Safe from any thread."""
        self._stop.set()

    def start(self) -> threading.Thread:
        def target() -> None:
            try:
                self.run()
            except BaseException as exc:  # reported through .error and join()
                self.error = exc
                _log.exception("simulation failed")
            finally:
                self.ready.set()

        self._thread = threading.Thread(target=target, name="firmware-sim", daemon=True)
        self._thread.start()
        return self._thread

    def sim_now_ms(self) -> int | None:
        """How far a paced run has really published (simulated epoch ms; None before the
        first message). Not the ideal pace: a run that falls behind must not let readings
        that a fault pushed into the future (clock skew) look current.

        Receivers of an accelerated run (the demo's ingest) judge "future" and "too old"
        readings against this clock rather than the wall clock."""
        return None if self.config.backfill else self._sent_through_ms

    @property
    def done(self) -> bool:
        """True once a run started with `start()` has ended (duration reached, stopped, failed)."""
        return self._thread is not None and not self._thread.is_alive()

    def join(self, timeout_s: float | None = None) -> SimStats:
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self.error is not None:
            raise self.error
        return self.stats

    async def run_async(self) -> SimStats:
        """Run in a worker thread; cancelling the awaiting task stops the run cleanly."""
        try:
            return await asyncio.to_thread(self.run)
        except asyncio.CancelledError:
            self.stop()
            raise

    # -- the run ---------------------------------------------------------------------------
    def _time_range(self) -> tuple[int, int | None]:
        cfg = self.config
        now_ms = int(time.time() * 1000)
        if cfg.start is not None:
            start = int(cfg.start.timestamp() * 1000)
        elif cfg.speed > 1:
            start = (now_ms // _DAY_MS - 7) * _DAY_MS
        else:
            start = now_ms
        if cfg.end is not None:
            return start, int(cfg.end.timestamp() * 1000)
        if cfg.duration_s is not None:
            return start, start + int(cfg.duration_s * 1000 * (1 if cfg.backfill else cfg.speed))
        if cfg.scenario is not None and cfg.scenario.duration is not None and cfg.backfill:
            return start, start + int(cfg.scenario.duration.total_seconds() * 1000)
        return start, None

    def run(self) -> SimStats:
        cfg = self.config
        start_ms, end_ms = self._time_range()
        faults = resolve_faults(cfg.scenario, self.plan, start_ms) if cfg.scenario else []
        gen = Generator(self.plan, faults, start_ms=start_ms)
        all_meters = [m.index for m in self.plan.meters]
        transport: SharedConnection | DeviceFleet
        if cfg.mode == "per-meter":
            transport = DeviceFleet(
                self.target, self.plan, self.encoder, qos=cfg.qos, protocol=cfg.protocol
            )
            transport.open()
        else:
            transport = SharedConnection(
                self.target, self.encoder, qos=cfg.qos, protocol=cfg.protocol,
                client_id=cfg.client_id, tls=cfg.tls,
            )  # fmt: skip
            transport.open(all_meters)
        truth: IO[str] | None = cfg.truth_path.open("w") if cfg.truth_path else None
        self.stats = SimStats(faults=len(faults), sim_start_ms=start_ms)
        self.ready.set()
        paced = not cfg.backfill
        chunk_ms = (
            _backfill_chunk_ms(self.plan)
            if not paced
            else int(min(max(cfg.speed * 10_000, 60_000), _DAY_MS))
        )
        chunks: queue.Queue[_Chunk | BaseException | None] = queue.Queue(maxsize=2)
        producer = threading.Thread(
            target=self._produce,
            args=(gen, start_ms, end_ms, chunk_ms, chunks),
            name="firmware-sim.generate",
            daemon=True,
        )
        t_start = time.monotonic()
        producer.start()
        wall0: float | None = None  # the pacing clock starts with the first chunk
        sim_ms = start_ms
        try:
            while not self._stop.is_set():
                try:
                    item = chunks.get(timeout=0.2)
                except queue.Empty:
                    if paced:
                        transport.poll(0.0)
                    continue
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                if wall0 is None:
                    wall0 = time.monotonic()
                if truth is not None:
                    for record in item.batch.truth:
                        truth.write(json.dumps(record) + "\n")
                    truth.flush()
                if not self._publish(transport, item.messages, paced, wall0, start_ms):
                    break
                sim_ms = item.end_ms
                self.stats.readings += len(item.batch)
                if self.on_progress is not None:
                    self.on_progress(sim_ms - start_ms, (end_ms or sim_ms) - start_ms)
            if isinstance(transport, SharedConnection):
                transport.drain()
        finally:
            self._stop.set()  # also ends the producer
            with contextlib.suppress(queue.Empty):
                chunks.get_nowait()
            if truth is not None:
                truth.close()
            self.stats.sim_end_ms = sim_ms
            self.stats.wall_s = time.monotonic() - t_start
            if isinstance(transport, SharedConnection):
                transport.close(all_meters)
            else:
                transport.close()
        return self.stats

    def _produce(
        self,
        gen: Generator,
        start_ms: int,
        end_ms: int | None,
        chunk_ms: int,
        out: queue.Queue[_Chunk | BaseException | None],
    ) -> None:
        """Generate and encode the next chunks ahead of the publisher (own thread), so a
        paced run never waits for numpy and a backfill overlaps the two."""
        sim_ms = start_ms
        try:
            while not self._stop.is_set() and (end_ms is None or sim_ms < end_ms):
                nxt = (sim_ms // chunk_ms + 1) * chunk_ms
                nxt = min(nxt, end_ms) if end_ms is not None else nxt
                batch = gen.advance(nxt)
                item = _Chunk(nxt, batch, self.encoder.messages(batch))
                while not self._stop.is_set():
                    with contextlib.suppress(queue.Full):
                        out.put(item, timeout=0.2)
                        break
                sim_ms = nxt
            item_end: _Chunk | BaseException | None = None
        except BaseException as exc:
            item_end = exc
        while not self._stop.is_set():
            with contextlib.suppress(queue.Full):
                out.put(item_end, timeout=0.2)
                return

    def _publish(
        self,
        transport: SharedConnection | DeviceFleet,
        messages: list[Message],
        paced: bool,
        wall0: float,
        sim0: int,
    ) -> bool:
        if not paced and isinstance(transport, SharedConnection):
            for i in range(0, len(messages), 2048):
                if self._stop.is_set():
                    return False
                part = messages[i : i + 2048]
                transport.send_many(part)
                self.stats.messages += len(part)
                transport.poll(0.0)  # read acks, keep the connection alive
            return True
        for msg in messages:
            if paced and not self._wait_until(transport, wall0, sim0, msg):
                return False
            if not paced and self._stop.is_set():
                return False
            transport.send(msg)
            self._sent_through_ms = msg.due_ms
            self.stats.messages += 1
            if not paced and self.stats.messages % 1024 == 0:
                transport.poll(0.0)  # read acks, keep the connections alive
        return True

    def _wait_until(
        self, transport: SharedConnection | DeviceFleet, wall0: float, sim0: int, msg: Message
    ) -> bool:
        due = wall0 + (msg.due_ms - sim0) / 1000.0 / self.config.speed
        while True:
            if self._stop.is_set():
                return False
            delay = due - time.monotonic()
            if delay <= 0:
                self.stats.lags_s.append(-delay)
                self.stats.lag_max_s = max(self.stats.lag_max_s, -delay)
                return True
            transport.poll(min(delay, 0.2))
