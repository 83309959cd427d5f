"""The meter firmware simulator (paho-mqtt): profiles, fault injection, ground truth.

Installed as the `firmware_sim` package (setuptools `package-dir`), reached by `ecocluster sim`.

Library use
-----------
Broker-free, for scoring detectors (numpy columns, deterministic for a seed)::

    from ecocluster.sim import generate, ground_truth
    cluster = load_cluster("deploy/cluster.example.yaml")
    for batch in generate(cluster, start, end, seed=1, scenario="bad-winter-week"):
        batch.series[batch.series_idx[i]]  # SeriesKey(org, site, meter, quantity)
        batch.ts_ms, batch.sent_ts_ms, batch.values  # true time, device time, value
        batch.events   # status changes, malformed payloads, hostile ids
        batch.truth    # ground-truth records of faults starting in this batch
        batch.to_reading_batch()  # the shared ReadingBatch (device timestamps)
    truth = ground_truth(cluster, start, seed=1, scenario="bad-winter-week")

`start`/`end` are aware datetimes or epoch ms. A reading depends only on seed, series and
timestamp (plus register history from `start`), never on the chunking.

Against a broker, in a background thread (the demo, with amqtt: `protocol="3.1.1"`)::

    sim = Simulation(build_plan(cluster, seed=1), SimConfig(broker=url, speed=60))
    sim.start(); ...; sim.stop(); sim.join()
    # or, from asyncio: task = asyncio.create_task(sim.run_async()); task.cancel()

Faults (`scenario.py`, `faults.py`): spike, overload, leak, burst, stuck, dropout,
counter_reset, meter_replacement, clock_skew, malformed, hostile_ids, air_episode.
Truth records: id, scenario, kind, site, meter, quantity, start/end (ISO UTC and ms),
params.
"""

from __future__ import annotations

from .faults import FAULT_KINDS, Fault
from .generate import DeviceEvent, Generator, SimBatch
from .offline import generate, ground_truth
from .payloads import Encoder, Message
from .plan import MeterSpec, SimPlan, build_plan
from .runner import SimConfig, SimStats, Simulation
from .scale import scale_cluster
from .scenario import Scenario, ScenarioError, load_scenario, resolve_faults

__all__ = [
    "FAULT_KINDS",
    "DeviceEvent",
    "Encoder",
    "Fault",
    "Generator",
    "Message",
    "MeterSpec",
    "Scenario",
    "ScenarioError",
    "SimBatch",
    "SimConfig",
    "SimPlan",
    "SimStats",
    "Simulation",
    "build_plan",
    "generate",
    "ground_truth",
    "load_scenario",
    "resolve_faults",
    "scale_cluster",
]
