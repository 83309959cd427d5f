"""API latency under load: 10,000 meters in the hot window, an open-loop asyncio load on
loopback at a fixed request rate, p50/p99 per endpoint as ratios to a trivial
endpoint of the same app measured in the same run.

The server (the real `ApiStage`: uvicorn, the app, the rule engine's hot window, a DuckDB
store with 24 h of 1-minute readings for one organisation's sites) runs in its own process;
this process only sends, over its own keep-alive HTTP/1.1 connections. Requests go out on a
fixed schedule (open loop: a slow answer does not delay the next request, so queueing shows
in the figures), interleaved by `--mix` (default 9:9:1:1 of every 20 requests) over:

  trivial    GET /api/v1/me                      token check + a constant body
  live       GET /api/v1/live?site=…             a facility manager's site: newest readings,
                                                 power, today's kWh, open alerts
  territory  GET /api/v1/live/territory          the coordinator's page (1,000 sites)
  history    GET /api/v1/history?…every=1m&start=-24h&group=site   24 h at 1 min, summed

    .venv/bin/python bench/api_load.py [--meters 10000] [--rate 500] [--seconds 10] [--runs 3]
                                       [--mix 9,9,1,1]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ecocluster.core.cluster import Meter, Organisation, Site, Territory
from ecocluster.core.registry import Cluster
from ecocluster.core.types import ReadingBatch

MIN = 60_000
QUANTITIES = ("energy_kwh", "power_w")


def build_cluster(n_meters: int) -> Cluster:
    n_sites = max(1, n_meters // 10)
    n_orgs = max(1, n_sites // 10)
    orgs = tuple(Organisation(id=f"o{i}", name=f"Org {i}", kind="public") for i in range(n_orgs))
    sites = tuple(
        Site(
            id=f"s{i}",
            org=f"o{i % n_orgs}",
            name=f"Site {i}",
            category="office",
            lat=44 + (i % 37) / 100,
            lon=10 + (i % 41) / 100,
        )
        for i in range(n_sites)
    )
    meters = tuple(
        Meter(id=f"m{i}", site=f"s{i % n_sites}", quantities=list(QUANTITIES))
        for i in range(n_meters)
    )
    return Cluster(
        territory=Territory(id="t", name="T", timezone="Europe/Rome"),
        organisations=orgs,
        sites=sites,
        meters=meters,
        contacts=(),
        rules=(),
        routes=(),
        escalations=(),
    )


def readings(cluster: Cluster, ts: np.ndarray, rows: np.ndarray) -> ReadingBatch:
    """Every series in `rows` at every time in `ts`: power ~5 kW, energy rising."""
    n_t = ts.shape[0]
    idx = np.repeat(rows, n_t)
    times = np.tile(ts, rows.shape[0])
    is_energy = np.array([cluster.series[i].quantity == "energy_kwh" for i in rows])
    step = np.tile(np.arange(n_t, dtype=np.float64), rows.shape[0])
    values = np.where(np.repeat(is_energy, n_t), 1000 + step * 5 / 60, 5000 + (idx % 97) * 10.0)
    deltas = np.where(np.repeat(is_energy, n_t) & (step > 0), 5 / 60, np.nan)
    return ReadingBatch(
        cluster.series, idx.astype(np.int64), times.astype(np.int64), values, deltas
    )


def serve(n_meters: int, workdir: str, conn: Any) -> None:
    """The server process: build the world, serve, send (port, tokens, site) back."""
    asyncio.run(_serve(n_meters, Path(workdir), conn))


async def _serve(n_meters: int, workdir: Path, conn: Any) -> None:
    from ecocluster.api import ApiDeps, HotWindowLive, TokenStore
    from ecocluster.api.stage import ApiStage
    from ecocluster.core.settings import Settings
    from ecocluster.ingest.stores.duckdb import DuckDBStore
    from ecocluster.rules.engine import RuleEngine
    from tests.api.memory_alerts import MemoryAlerts

    cluster = build_cluster(n_meters)
    now = time.time_ns() // 1_000_000 // MIN * MIN
    store = DuckDBStore(workdir / "bench.duckdb")
    await store.open()
    org0 = np.array([i for i, k in enumerate(cluster.series) if k.org == "o0"], np.int64)
    await store.write(
        readings(cluster, np.arange(now - 1440 * MIN, now, MIN, dtype=np.int64), org0)
    )
    engine = RuleEngine(cluster)
    engine.ingest(readings(cluster, np.array([now - 30_000]), np.arange(len(cluster.series))))
    alerts = MemoryAlerts(lambda: time.time_ns() // 1_000_000)
    for i in range(0, len(cluster.sites), 10):
        s = cluster.sites[i]
        alerts.fire("power-overload", {"org": s.org, "site": s.id}, severity="warning")
    tokens = TokenStore(workdir / "tokens.sqlite")
    fm = tokens.create(role="facility_manager", org="o0", name="fm").token
    coordinator = tokens.create(role="coordinator", org=None, name="coord").token
    settings = Settings(data_dir=workdir, api_rate_per_s=0, api_port=0)
    deps = ApiDeps(
        cluster=cluster,
        settings=settings,
        store=store,
        live=HotWindowLive(engine),
        alerts=alerts,
        tokens=tokens,
    )
    stage = ApiStage(deps)
    ready = asyncio.Event()
    task = asyncio.create_task(stage.run(ready))
    await ready.wait()
    conn.send(
        {
            "port": stage.port,
            "fm": fm,
            "coordinator": coordinator,
            "site": "s0",
            "series": len(cluster.series),
            "meters": len(cluster.meters),
        }
    )
    await task


class _Lane:
    """One keep-alive HTTP/1.1 connection. The load generator speaks HTTP itself: httpx's
    async pool spends milliseconds per request on its own bookkeeping at hundreds of
    concurrent requests and became the bottleneck (the server idled at 2 % CPU)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def get(self, path: str, headers: dict[str, str]) -> int:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n{head}\r\n".encode())
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status


class _Pool:
    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[_Lane] = []
        self.lanes: list[_Lane] = []

    async def get(self, path: str, headers: dict[str, str]) -> int:
        lane = self.idle.pop() if self.idle else await self._open()
        try:
            status = await lane.get(path, headers)
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            lane.writer.close()
            raise
        self.idle.append(lane)
        return status

    async def _open(self) -> _Lane:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        lane = _Lane(reader, writer)
        self.lanes.append(lane)
        return lane

    def close(self) -> None:
        for lane in self.lanes:
            lane.writer.close()


async def _one(
    pool: _Pool,
    name: str,
    path: str,
    headers: dict[str, str],
    out: dict[str, list[float]],
    errors: list[str],
) -> None:
    start = time.perf_counter()
    try:
        status = await pool.get(path, headers)
    except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
        errors.append(f"{name}: {type(exc).__name__}")
        return
    if status != 200:
        errors.append(f"{name}: {status}")
        return
    out[name].append((time.perf_counter() - start) * 1000)


async def load(
    port: int, plan: list[tuple[str, str, dict[str, str]]], rate: float, seconds: float
) -> tuple[dict[str, list[float]], list[str], float]:
    out: dict[str, list[float]] = {name: [] for name, _, _ in plan}
    errors: list[str] = []
    pool = _Pool(port)
    tasks = []
    n = int(rate * seconds)
    t0 = time.perf_counter()
    for i in range(n):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        name, path, headers = plan[i % len(plan)]
        tasks.append(asyncio.create_task(_one(pool, name, path, headers, out, errors)))
    sent_s = time.perf_counter() - t0
    await asyncio.gather(*tasks)
    pool.close()
    return out, errors, n / sent_s


def _interleave(endpoints: list[Any], weights: list[int]) -> list[Any]:
    """A round of sum(weights) requests, each endpoint spread evenly through it."""
    slots = []
    for endpoint, weight in zip(endpoints, weights, strict=True):
        slots += [((i + 0.5) / weight, endpoint) for i in range(weight)]
    return [e for _, e in sorted(slots, key=lambda s: s[0])]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--meters", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--mix", default="9,9,1,1", help="requests of trivial,live,territory,history per round"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="api-bench-") as workdir:
        parent, child = mp.Pipe()
        server = mp.get_context("spawn").Process(
            target=serve, args=(args.meters, workdir, child), daemon=True
        )
        server.start()
        info = parent.recv()
        fm = {"Authorization": f"Bearer {info['fm']}"}
        co = {"Authorization": f"Bearer {info['coordinator']}"}
        endpoints = [
            ("trivial", "/api/v1/me", fm),
            ("live", f"/api/v1/live?site={info['site']}", fm),
            ("territory", "/api/v1/live/territory", co),
            (
                "history",
                f"/api/v1/history?quantity=power_w&site={info['site']}&every=1m"
                "&start=-24h&group=site",
                fm,
            ),
        ]
        weights = [int(w) for w in args.mix.split(",")]
        plan = _interleave(endpoints, weights)
        print(
            f"{info['meters']} meters ({info['series']} series) in the hot window; "
            f"{args.rate:.0f} req/s for {args.seconds:.0f} s × {args.runs} runs, "
            f"mix trivial:live:territory:history = {args.mix}"
        )
        asyncio.run(load(info["port"], plan, min(args.rate, 100), 2))  # warm-up
        runs = []
        for run in range(args.runs):
            out, errors, achieved = asyncio.run(load(info["port"], plan, args.rate, args.seconds))
            stats = {
                k: (float(np.percentile(v, 50)), float(np.percentile(v, 99)))
                for k, v in out.items()
                if v
            }
            runs.append(stats)
            print(
                f"run {run + 1}: sent {achieved:.0f} req/s, {sum(map(len, out.values()))} ok, "
                f"{len(errors)} errors {sorted(set(errors))[:3]}"
            )
            for name, (p50, p99) in stats.items():
                print(f"    {name:10s} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms")
        server.terminate()
    print("\nmedians over runs (ratio = endpoint / trivial, same run):")
    print(f"{'endpoint':10s} {'p50 ms':>8s} {'p99 ms':>8s} {'p50 ×':>7s} {'p99 ×':>7s}")
    for name in ("trivial", "live", "territory", "history"):
        if not all(name in r for r in runs):
            continue
        p50 = statistics.median(r[name][0] for r in runs)
        p99 = statistics.median(r[name][1] for r in runs)
        r50 = statistics.median(r[name][0] / r["trivial"][0] for r in runs)
        r99 = statistics.median(r[name][1] / r["trivial"][1] for r in runs)
        print(f"{name:10s} {p50:8.2f} {p99:8.2f} {r50:7.2f} {r99:7.2f}")


if __name__ == "__main__":
    main()
