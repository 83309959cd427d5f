"""The anomaly rule on NAB (Numenta Anomaly Benchmark), scored the NAB way (`nab_score.py`).

Each NAB file is one series fed reading by reading into a real `RuleEngine` that ticks at
every reading; a detection is an alert starting to fire (what would page someone), so an
alert that stays firing counts once. One engine run evaluates a grid of anomaly-rule
settings at once (one rule each). The setting is chosen per profile on the
realAWSCloudwatch files and reported on realKnownCause, which it never saw (and on the
whole stored subset, for information). NAB's own detectors have their threshold chosen on
the whole corpus they are reported on; ours is the stricter, held-out reading.

The reference is NAB's Windowed Gaussian detector (window 6400, step 100, tail
probability as score), re-implemented and run here on the same files, its threshold
chosen on the same training part: the ratio to it is the figure to compare. Published
scores (39.6 for Windowed Gaussian) are on the full 58-file corpus and are not comparable.

    .venv/bin/python bench/nab.py [--data /work/shared/data/nab] [--jobs 2]
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nab_score import PROFILES, NabFile, load_corpus, normalised, raw_score

from ecocluster.core.cluster import Meter, Organisation, RuleSpec, Site, Territory
from ecocluster.core.registry import Cluster
from ecocluster.core.types import BoolArray, FloatArray
from ecocluster.rules.engine import RuleEngine

DATA = Path("/work/shared/data/nab")
TRAIN, TEST = "realAWSCloudwatch", "realKnownCause"


def grid() -> list[dict[str, Any]]:
    """The settings tried: robust running level (no weekly rhythm in most NAB files) and
    the weekly seasonal baseline."""
    out: list[dict[str, Any]] = []
    for z, window, learn in itertools.product((4.0, 6.0), ("5m", "15m"), ("3h", "1d")):
        out.append(
            {
                "season": "none",
                "z": z,
                "window": window,
                "learn": learn,
                "rel_floor": 0.02,
                "min_history": "1h",
                "min_samples": 12,
            }
        )
    for z in (5.0,):
        out.append(
            {
                "season": "week",
                "z": z,
                "window": "15m",
                "min_history": "7d",
                "min_samples": 2,
                "rel_floor": 0.05,
            }
        )
    return [
        {
            "name": f"g{i}",
            "type": "anomaly",
            "quantity": "temp_c",
            "min_effect": 0,
            "flapping": {"count": 0},
            **g,
        }
        for i, g in enumerate(out)
    ]


def _cluster(rules: list[dict[str, Any]]) -> Cluster:
    return Cluster(
        territory=Territory(id="nab", name="NAB", timezone="UTC"),
        organisations=(Organisation(id="o", name="O", kind="public"),),
        sites=(Site(id="s", org="o", name="S", category="office", lat=0, lon=0),),
        meters=(Meter(id="m", site="s", quantities=["temp_c"]),),
        contacts=(),
        rules=tuple(RuleSpec.model_validate(r) for r in rules),
        routes=(),
        escalations=(),
    )


def run_rules(f: NabFile, rules: list[dict[str, Any]]) -> dict[str, BoolArray]:
    """Rows at which each rule's alert starts firing: {rule name: (n,) bool}."""
    engine = RuleEngine(_cluster(rules))
    out = {r["name"]: np.zeros(f.ts_ms.shape[0], np.bool_) for r in rules}
    row = np.zeros(1, np.int64)
    for i, (ts, value) in enumerate(zip(f.ts_ms.tolist(), f.values.tolist(), strict=True)):
        engine.window.scatter(row, np.array([ts], np.int64), np.array([value]))
        for t in engine.tick(ts + 1):
            if t.state == "firing" and t.previous != "firing":
                out[t.rule][i] = True
    return out


def windowed_gaussian(values: FloatArray, size: int = 6400, step: int = 100) -> FloatArray:
    """NAB's Windowed Gaussian scores: 1 − two-sided tail probability against the mean and
    σ of a window of past values, refreshed every `step` readings once full."""
    scores = np.zeros(values.shape[0])
    window: list[float] = []
    pending: list[float] = []
    mean, std = 0.0, 1.0
    for i, x in enumerate(values.tolist()):
        if window:
            z = abs(x - mean) / std
            scores[i] = 1.0 - 0.5 * math.erfc(z / math.sqrt(2.0))
        if len(window) < size:
            window.append(x)
            mean, std = float(np.mean(window)), float(np.std(window)) or 1e-6
        else:
            pending.append(x)
            if len(pending) == step:
                window = window[step:] + pending
                pending = []
                mean, std = float(np.mean(window)), float(np.std(window)) or 1e-6
    return scores


def _job(
    args: tuple[NabFile, list[dict[str, Any]]],
) -> tuple[str, dict[str, BoolArray], FloatArray]:
    f, rules = args
    return f.name, run_rules(f, rules), windowed_gaussian(f.values)


def _total(files: list[NabFile], detections: dict[str, BoolArray], profile: str) -> float:
    p = PROFILES[profile]
    raw = sum(raw_score(f, detections[f.name], p) for f in files)
    return normalised(raw, files, p)


def _best_threshold(files: list[NabFile], scores: dict[str, FloatArray], profile: str) -> float:
    candidates = np.unique(np.concatenate([scores[f.name] for f in files]))
    candidates = np.quantile(candidates, np.linspace(0.5, 1.0, 400))
    best = max(
        candidates.tolist(),
        key=lambda th: _total(files, {f.name: scores[f.name] >= th for f in files}, profile),
    )
    return float(best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    t0 = time.perf_counter()
    files = load_corpus(args.data)
    train = [f for f in files if f.name.startswith(TRAIN)]
    test = [f for f in files if f.name.startswith(TEST)]
    rules = grid()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(_job, [(f, rules) for f in files]))
    by_rule = {r["name"]: {name: det[r["name"]] for name, det, _ in results} for r in rules}
    gauss = {name: scores for name, _, scores in results}
    print(
        f"{len(files)} files ({len(train)} {TRAIN} to choose, {len(test)} {TEST} to report), "
        f"{sum(f.ts_ms.shape[0] for f in files):,} readings, {len(rules)} settings, "
        f"{time.perf_counter() - t0:.0f} s"
    )
    print(f"\n{'profile':<20} {'detector':<18} {'train':>7} {'TEST':>7} {'all 24':>7}  setting")
    for profile in PROFILES:
        best = max(rules, key=lambda r: _total(train, by_rule[r["name"]], profile))
        det = by_rule[best["name"]]
        setting = {k: v for k, v in best.items() if k not in ("type", "quantity", "flapping")}
        scores = [_total(part, det, profile) for part in (train, test, files)]
        th = _best_threshold(train, gauss, profile)
        gdet = {name: s >= th for name, s in gauss.items()}
        gscores = [_total(part, gdet, profile) for part in (train, test, files)]
        print(
            f"{profile:<20} {'anomaly rule':<18} {scores[0]:>7.1f} {scores[1]:>7.1f} "
            f"{scores[2]:>7.1f}  {setting}"
        )
        print(
            f"{'':<20} {'windowed Gaussian':<18} {gscores[0]:>7.1f} {gscores[1]:>7.1f} "
            f"{gscores[2]:>7.1f}  threshold {th:.6f}"
        )
        ratio = scores[1] / gscores[1] if gscores[1] else float("nan")
        print(f"{'':<20} {'ratio on TEST':<18} {ratio:>7.2f}")


if __name__ == "__main__":
    main()
