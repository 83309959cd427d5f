"""A crowd on the public page: N concurrent anonymous clients against
`GET /api/v1/public/summary`, served by the real `ApiStage` (uvicorn on loopback) in its
own process, over the example territory (7 air stations, every register) with a DuckDB
store holding 3 days of 5-minute air readings and hourly registers for this month and the
same month last year.

Three cases, each with a fresh server process (same data, same run of this script):
  cached       cache on (max-age `--max-age`), clients send no validator
  revalidate   cache on, clients send If-None-Match with the ETag they hold (→ 304)
  uncached     the server-side cache off (max-age 0): every request computes (baseline)
Figures: requests/s, p50/p99 latency, and how many times the summary was computed during
the run (counted by the server's cache), with ratios against the uncached baseline.

    .venv/bin/python bench/public_load.py [--clients 50] [--seconds 10] [--max-age 5] [--runs 3]
                                          [--client httpx|raw]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HOUR = 3_600_000
EXAMPLE = Path(__file__).resolve().parent.parent / "ecocluster" / "cluster.example.yaml"
STEP = 300_000


def _air_batch(cluster: Any, now: int) -> Any:
    from ecocluster.core.types import AIR_QUANTITIES, ReadingBatch

    ts = np.arange(now - 72 * HOUR, now, STEP, dtype=np.int64)
    rng = np.random.default_rng(7)
    rows = [i for i, k in enumerate(cluster.series) if k.quantity in AIR_QUANTITIES]
    base = {
        "pm10_ugm3": 25,
        "pm25_ugm3": 14,
        "no2_ugm3": 30,
        "o3_ugm3": 70,
        "so2_ugm3": 6,
        "co_mgm3": 0.4,
    }
    values = np.concatenate(
        [base[cluster.series[i].quantity] * rng.uniform(0.5, 1.5, ts.shape[0]) for i in rows]
    )
    n = values.shape[0]
    return ReadingBatch(
        cluster.series,
        np.repeat(np.array(rows, np.int64), ts.shape[0]),
        np.tile(ts, len(rows)),
        values,
        np.full(n, np.nan),
    )


def _register_batch(cluster: Any, now: int) -> Any:
    from ecocluster.core.types import CUMULATIVE_QUANTITIES, ReadingBatch

    last_year = now - 365 * 24 * HOUR
    ts = np.concatenate(
        [np.arange(t - 31 * 24 * HOUR, t, HOUR, dtype=np.int64) for t in (last_year, now)]
    )
    rows = [i for i, k in enumerate(cluster.series) if k.quantity in CUMULATIVE_QUANTITIES]
    n_t = ts.shape[0]
    deltas = np.full(n_t * len(rows), 3.0)
    values = np.tile(np.cumsum(np.full(n_t, 3.0)), len(rows))
    return ReadingBatch(
        cluster.series,
        np.repeat(np.array(rows, np.int64), n_t),
        np.tile(ts, len(rows)),
        values,
        deltas,
    )


def serve(workdir: str, max_age: int, conn: Any) -> None:
    asyncio.run(_serve(Path(workdir), max_age, conn))


async def _serve(workdir: Path, max_age: int, conn: Any) -> None:
    from ecocluster.api import ApiDeps, HotWindowLive, TokenStore
    from ecocluster.api.stage import ApiStage
    from ecocluster.core.registry import load_cluster
    from ecocluster.core.settings import Settings
    from ecocluster.ingest.stores.duckdb import DuckDBStore
    from ecocluster.rules.engine import RuleEngine
    from tests.api.memory_alerts import MemoryAlerts

    cluster = load_cluster(EXAMPLE)
    now = time.time_ns() // 1_000_000 // STEP * STEP
    store = DuckDBStore(workdir / "bench.duckdb")
    await store.open()
    await store.write(_air_batch(cluster, now))
    await store.write(_register_batch(cluster, now))
    alerts = MemoryAlerts(lambda: time.time_ns() // 1_000_000)
    settings = Settings(
        data_dir=workdir, api_port=0, public_cache_max_age_s=max_age, log_level="WARNING"
    )
    deps = ApiDeps(
        cluster=cluster,
        settings=settings,
        store=store,
        live=HotWindowLive(RuleEngine(cluster)),
        alerts=alerts,
        tokens=TokenStore(workdir / "tokens.sqlite"),
    )
    stage = ApiStage(deps)
    ready = asyncio.Event()
    task = asyncio.create_task(stage.run(ready))
    await ready.wait()
    conn.send({"port": stage.port})
    while True:  # answer "how many computations so far?" until told to stop
        command = await asyncio.to_thread(conn.recv)
        if command == "stop":
            break
        app = stage.app  # type: ignore[attr-defined]
        conn.send(dict(app.state.public_cache.computations))
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _client(
    client: httpx.AsyncClient, until: float, revalidate: bool, lat: list[float], errors: list[str]
) -> None:
    etag: str | None = None
    while time.perf_counter() < until:
        headers = {"If-None-Match": etag} if revalidate and etag else {}
        t0 = time.perf_counter()
        try:
            r = await client.get("/api/v1/public/summary", headers=headers)
        except httpx.HTTPError as exc:
            errors.append(type(exc).__name__)
            continue
        if r.status_code not in (200, 304):
            errors.append(str(r.status_code))
            continue
        lat.append((time.perf_counter() - t0) * 1000)
        etag = r.headers.get("etag", etag)


class _Lane:
    """One keep-alive HTTP/1.1 connection speaking just enough HTTP (as bench/api_load.py's
    lanes do: httpx's pool bookkeeping costs milliseconds per request on a busy machine and
    can be the bottleneck), keeping the ETag for If-None-Match."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.etag: str | None = None
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str, revalidate: bool) -> int:
        if self.streams is None:
            self.streams = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self.streams
        cond = f"If-None-Match: {self.etag}\r\n" if revalidate and self.etag else ""
        writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n{cond}\r\n".encode())
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "etag":
                self.etag = value.strip()
        await reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()


async def _raw_client(
    port: int, until: float, revalidate: bool, lat: list[float], errors: list[str]
) -> None:
    lane = _Lane(port)
    try:
        while time.perf_counter() < until:
            t0 = time.perf_counter()
            try:
                status = await lane.get("/api/v1/public/summary", revalidate)
            except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
                errors.append(type(exc).__name__)
                lane.close()
                lane = _Lane(port)
                continue
            if status not in (200, 304):
                errors.append(str(status))
                continue
            lat.append((time.perf_counter() - t0) * 1000)
    finally:
        lane.close()


async def crowd(
    port: int, clients: int, seconds: float, revalidate: bool, kind: str = "httpx"
) -> dict[str, Any]:
    lat: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60
    ) as client:
        t0 = time.perf_counter()
        if kind == "httpx":
            runs = [_client(client, t0 + seconds, revalidate, lat, errors) for _ in range(clients)]
        else:
            runs = [
                _raw_client(port, t0 + seconds, revalidate, lat, errors) for _ in range(clients)
            ]
        await asyncio.gather(*runs)
        elapsed = time.perf_counter() - t0
    return {
        "rps": len(lat) / elapsed,
        "p50": float(np.percentile(lat, 50)) if lat else float("nan"),
        "p99": float(np.percentile(lat, 99)) if lat else float("nan"),
        "errors": len(errors),
    }


def _start(workdir: str, max_age: int) -> tuple[Any, Any, int]:
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(
        target=serve, args=(workdir, max_age, child), daemon=True
    )
    proc.start()
    return proc, parent, parent.recv()["port"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-age", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--client",
        choices=("httpx", "raw"),
        default="httpx",
        help="httpx.AsyncClient, or raw keep-alive HTTP/1.1 lanes (less client-side CPU)",
    )
    args = parser.parse_args()
    cases = [
        ("cached", args.max_age, False),
        ("revalidate", args.max_age, True),
        ("uncached", 0, False),
    ]
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in cases}
    print(
        f"{args.clients} anonymous {args.client} clients, {args.seconds:.0f} s ×"
        f" {args.runs} runs per case, max-age {args.max_age} s"
    )
    with tempfile.TemporaryDirectory(prefix="public-bench-") as workdir:
        for name, max_age, revalidate in cases:
            proc, conn, port = _start(str(Path(workdir) / name), max_age)
            try:
                asyncio.run(crowd(port, 4, 1.0, revalidate, args.client))  # warm-up
                for run in range(args.runs):
                    conn.send("count")
                    before = conn.recv().get("summary", 0)
                    res = asyncio.run(
                        crowd(port, args.clients, args.seconds, revalidate, args.client)
                    )
                    conn.send("count")
                    res["computations"] = conn.recv().get("summary", 0) - before
                    results[name].append(res)
                    print(
                        f"  {name:10s} run {run + 1}: {res['rps']:8.1f} req/s  p50"
                        f" {res['p50']:7.2f} ms  p99 {res['p99']:8.2f} ms  computations"
                        f" {res['computations']:5d}  errors {res['errors']}"
                    )
            finally:
                conn.send("stop")
                proc.join(5)
                proc.terminate()
    base = results["uncached"]
    print("\nmedians over runs (ratio = case / uncached, same script run):")
    print(
        f"{'case':10s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'comp/run':>9s}"
        f" {'req/s ×':>8s} {'p50 ×':>7s} {'comp/s':>7s}"
    )
    for name, runs in results.items():
        rps = statistics.median(r["rps"] for r in runs)
        p50 = statistics.median(r["p50"] for r in runs)
        p99 = statistics.median(r["p99"] for r in runs)
        comp = statistics.median(r["computations"] for r in runs)
        r_rps = statistics.median(r["rps"] / b["rps"] for r, b in zip(runs, base, strict=True))
        r_p50 = statistics.median(r["p50"] / b["p50"] for r, b in zip(runs, base, strict=True))
        print(
            f"{name:10s} {rps:9.1f} {p50:8.2f} {p99:8.2f} {comp:9.0f} {r_rps:8.2f}"
            f" {r_p50:7.3f} {comp / args.seconds:7.2f}"
        )


if __name__ == "__main__":
    main()
