"""Counter-based noise: the value at a time step is a pure function of (seed, stream, step).

Why not `numpy.random.Generator`: a stateful generator makes every value depend on how the
run was cut into chunks (and on every meter generated before it). Hashing the step index
instead makes a reading depend only on the seed, the series and its timestamp, so a
30-day backfill, a one-hour window and a real-time run agree reading for reading, and the
rule engine can regenerate any slice it wants to score.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

from ecocluster.core.types import FloatArray, IntArray

__all__ = ["normal", "stream_key", "uniform", "value_noise"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TWO_PI = 2.0 * np.pi

U64Array = npt.NDArray[np.uint64]


def stream_key(seed: int, *names: object) -> int:
    """A 64-bit key for one noise stream, e.g. `stream_key(seed, "site", "em-01", "power")`."""
    text = "\x1f".join(str(n) for n in (seed, *names)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def _mix(x: U64Array) -> U64Array:
    # splitmix64 finaliser; uint64 array arithmetic wraps silently (scalars would warn).
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def _hash(key: int, steps: IntArray) -> U64Array:
    idx = np.asarray(steps, dtype=np.int64).astype(np.uint64)
    return _mix(_mix(idx ^ np.full(idx.shape, key, dtype=np.uint64)))


def uniform(key: int, steps: IntArray) -> FloatArray:
    """Uniform [0, 1) per step index, shape of `steps`."""
    return (_hash(key, steps) >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def normal(key: int, steps: IntArray) -> FloatArray:
    """Standard normal per step index (Box-Muller over two hashed uniforms)."""
    u1 = uniform(key, steps)
    u2 = uniform(key ^ 0x5DEECE66D, steps)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(_TWO_PI * u2)


def value_noise(key: int, t_s: FloatArray, knot_s: float) -> FloatArray:
    """Smooth noise (about N(0, 0.75)): normal values at knots every `knot_s` seconds,
    joined with a smoothstep, for weather, pollution episodes and slow load drift."""
    pos = np.asarray(t_s, dtype=np.float64) / knot_s
    knot = np.floor(pos)
    frac = pos - knot
    k = knot.astype(np.int64)
    w = frac * frac * (3.0 - 2.0 * frac)
    return (1.0 - w) * normal(key, k) + w * normal(key, k + 1)
