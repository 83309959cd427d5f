"""NAB scoring, re-implemented from the rules of `numenta/NAB` (nab/sweeper.py,
nab/runner.py normalize, config/profiles.json at ea702d7): read to learn, not copied.

- The first `min(floor(0.15 n), 0.15 × 5000)` rows of a file are probation: not scored.
- A detection inside an anomaly window at relative position y (−1 left edge … 0 right
  edge) is worth `A_TP · σ(y) / σ(−1)` with the scaled sigmoid `σ(y) = 2/(1+e^{5y}) − 1`;
  only the best (earliest) detection of a window counts; a window without one costs `−A_FN`.
- A detection outside every window costs `A_FP · σ(d)` where d is its distance past the
  previous window's right edge in (that window's width − 1) rows, or `−A_FP` before the
  first window (and σ = −1 beyond 3 widths).
- Normalised: `100 · (S − S_null) / (S_perfect − S_null)`, S_perfect = windows × A_TP,
  S_null = the score of a detector that never fires.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from ecocluster.core.types import BoolArray, FloatArray, IntArray

__all__ = ["PROFILES", "NabFile", "Profile", "load_corpus", "normalised", "raw_score"]


@dataclass(frozen=True, slots=True)
class Profile:
    tp: float
    fp: float
    fn: float


PROFILES = {
    "standard": Profile(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": Profile(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": Profile(tp=1.0, fp=0.11, fn=2.0),
}


def scaled_sigmoid(y: float) -> float:
    return -1.0 if y > 3.0 else 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


@dataclass(frozen=True)
class NabFile:
    """One data file: timestamps (ms), values, and per row its window (−1 outside,
    −2 probation) and unweighted TP / FP sigmoid values."""

    name: str
    ts_ms: IntArray
    values: FloatArray
    window_of: IntArray
    tp_sigmoid: FloatArray
    fp_sigmoid: FloatArray
    n_windows: int

    @property
    def scored_windows(self) -> set[int]:
        return {int(w) for w in self.window_of if w >= 0}


def _parse(text: str) -> int:
    return int(datetime.fromisoformat(text.split(".")[0] + "+00:00").timestamp() * 1000)


def _prepare(name: str, ts_ms: IntArray, values: FloatArray, windows: list[list[str]]) -> NabFile:
    n = ts_ms.shape[0]
    index = {int(t): i for i, t in enumerate(ts_ms.tolist())}
    bounds = [(index[_parse(a)], index[_parse(b)]) for a, b in windows]
    window_of = np.full(n, -1, np.int64)
    tp = np.zeros(n)
    fp = np.full(n, -1.0)
    max_tp = scaled_sigmoid(-1.0)
    for w, (left, right) in enumerate(bounds):
        width = right - left + 1
        for i in range(left, right + 1):
            window_of[i] = w
            tp[i] = scaled_sigmoid(-(right - i + 1) / width) / max_tp
        end = bounds[w + 1][0] if w + 1 < len(bounds) else n
        for i in range(right + 1, end):
            fp[i] = scaled_sigmoid(abs(right - i) / (width - 1))
    probation = int(min(math.floor(0.15 * n), 0.15 * 5000))
    window_of[:probation] = -2
    return NabFile(name, ts_ms, values, window_of, tp, fp, len(bounds))


def load_corpus(root: Path) -> list[NabFile]:
    """Every data file under `root/data` that the windows file knows, in name order."""
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    out = []
    for path in sorted((root / "data").glob("*/*.csv")):
        name = f"{path.parent.name}/{path.name}"
        if name not in windows:
            continue
        rows = [line.split(",") for line in path.read_text().splitlines()[1:] if line]
        ts = np.array([_parse(r[0]) for r in rows], np.int64)
        values = np.array([float(r[1]) for r in rows])
        out.append(_prepare(name, ts, values, windows[name]))
    return out


def raw_score(f: NabFile, detected: BoolArray, profile: Profile) -> float:
    """The file's NAB score for the rows flagged in `detected` (n,)."""
    best = {w: -profile.fn for w in f.scored_windows}
    fp_total = 0.0
    for i in np.flatnonzero(detected & (f.window_of != -2)).tolist():
        w = int(f.window_of[i])
        if w >= 0:
            best[w] = max(best[w], float(f.tp_sigmoid[i]) * profile.tp)
        else:
            fp_total += float(f.fp_sigmoid[i]) * profile.fp
    return sum(best.values()) + fp_total


def normalised(raw: float, files: list[NabFile], profile: Profile) -> float:
    perfect = sum(f.n_windows for f in files) * profile.tp
    null = sum(raw_score(f, np.zeros(f.ts_ms.shape[0], np.bool_), profile) for f in files)
    return 100.0 * (raw - null) / (perfect - null)
