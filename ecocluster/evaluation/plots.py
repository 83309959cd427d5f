"""Pictures of an evaluation (matplotlib, Agg: no display needed): one PNG per fault —
the meter's series as ingest handed it on, the fault window shaded, each alert on that
meter marked (the kind's own detectors in red, other rules in grey), the messages ingest
refused marked at the bottom — and a summary figure (recall per fault kind, time to
detect, false alarms per rule).

    paths = plot_faults(results, out_dir / "faults", tz)
    summary_png = plot_summary(summary, out_dir / "summary.png")
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import matplotlib

matplotlib.use("Agg")  # before pyplot: never a display

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .ingest_checks import SeriesTrace
from .run import RunResult
from .score import DETECTORS, MIN_MS, FaultOutcome, Firing, Summary

__all__ = ["plot_faults", "plot_summary"]

#: Quantities to draw for a device-level fault (no quantity in the truth), in this order.
_PREFERRED = ("power_w", "flow_lpm", "pm10_ugm3", "no2_ugm3", "co2_ppm", "temp_c")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def plot_faults(results: Sequence[RunResult], out_dir: Path, tz: ZoneInfo) -> list[Path]:
    """One PNG per fault of every run; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for result in results:
        for fault in result.score.faults:
            path = out_dir / _SAFE.sub("_", f"seed{result.score.seed}-{fault.id}-{fault.kind}.png")
            fig = _fault_figure(result, fault, tz)
            fig.savefig(path, dpi=100)
            plt.close(fig)
            paths.append(path)
    return paths


def _quantity(result: RunResult, fault: FaultOutcome) -> str | None:
    if fault.quantity:
        return fault.quantity
    have = {q for (s, m, q) in result.series if (s, m) == (fault.site, fault.meter)}
    for q in _PREFERRED:
        if q in have:
            return q
    return min(have) if have else None


def _window(result: RunResult, fault: FaultOutcome, hits: list[Firing]) -> tuple[int, int]:
    length = max(fault.end_ms - fault.start_ms, 0)
    pad = max(30 * MIN_MS, length // 2)
    lo = fault.start_ms - pad
    hi = max(fault.end_ms, *(f.at_ms for f in hits)) + pad if hits else fault.end_ms + pad
    return max(lo, result.start_ms), min(hi, result.end_ms)


def _dt(ms: np.ndarray | int, tz: ZoneInfo) -> np.ndarray:
    """Epoch ms → matplotlib date numbers (the axis formatter shows them in `tz`)."""
    values = np.atleast_1d(np.asarray(ms, np.int64))
    return np.asarray(
        mdates.date2num([datetime.fromtimestamp(v / 1000, tz) for v in values.tolist()])
    )


def _with_gaps(ts: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A NaN inside every silence longer than 2.5 reporting intervals, so the line breaks
    where readings are missing instead of bridging a dropout."""
    if ts.size < 3:
        return ts, values
    steps = np.diff(ts)
    gaps = np.flatnonzero(steps > 2.5 * np.median(steps)) + 1
    return (
        np.insert(ts, gaps, ts[gaps - 1] + 1),
        np.insert(values.astype(np.float64), gaps, np.nan),
    )


def _fault_figure(result: RunResult, fault: FaultOutcome, tz: ZoneInfo) -> Figure:
    firings = [f for f in result.score.firings if (f.site, f.meter) == (fault.site, fault.meter)]
    detector = set(result.score.detectors.get(fault.kind, ()))
    hits = [f for f in firings if f.rule in detector]
    lo, hi = _window(result, fault, hits)
    quantity = _quantity(result, fault)
    fig, ax = plt.subplots(figsize=(10, 4.2), layout="constrained")
    trace = result.series.get((fault.site, fault.meter, quantity or ""), SeriesTrace())
    ts, values, _ = trace.arrays()
    inside = (ts >= lo) & (ts <= hi)
    if inside.any():
        x, y = _with_gaps(ts[inside], values[inside])
        ax.plot(_dt(x, tz), y, lw=1.0, color="#1f5f99", label=quantity)
    else:
        ax.text(0.5, 0.5, "no readings reached the rules here", transform=ax.transAxes,
                ha="center", va="center", color="#777777")  # fmt: skip
    start = float(_dt(fault.start_ms, tz)[0])
    end = float(_dt(max(fault.end_ms, fault.start_ms), tz)[0])
    if fault.end_ms > fault.start_ms:
        ax.axvspan(start, end, color="#f4a582", alpha=0.35, label=f"{fault.kind} (truth)")
    else:
        ax.axvline(start, color="#d6604d", lw=2, alpha=0.6, label=f"{fault.kind} (truth)")
    _mark_firings(ax, firings, detector, lo, hi, tz)
    _mark_refusals(ax, result, fault, lo, hi, tz)
    verdict = _verdict(fault)
    ax.set_title(
        f"seed {result.score.seed} · {fault.kind} at {fault.site}/{fault.meter}"
        f"{f' ({fault.quantity})' if fault.quantity else ''} — {verdict}",
        fontsize=10,
    )
    ax.set_ylabel(quantity or "")
    ax.set_xlim(float(_dt(lo, tz)[0]), float(_dt(hi, tz)[0]))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b %H:%M", tz=tz))
    ax.set_xlabel(f"time ({tz.key})")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def _mark_firings(
    ax: plt.Axes, firings: list[Firing], detector: set[str], lo: int, hi: int, tz: ZoneInfo
) -> None:
    shown: set[str] = set()
    for f in firings:
        if not lo <= f.at_ms <= hi:
            continue
        mine = f.rule in detector
        label = f"alert: {f.rule}" if f.rule not in shown else None
        shown.add(f.rule)
        ax.axvline(_dt(f.at_ms, tz)[0], color="#b2182b" if mine else "#888888",
                   lw=1.8 if mine else 1.0, ls="-" if mine else "--", label=label)  # fmt: skip


def _mark_refusals(
    ax: plt.Axes, result: RunResult, fault: FaultOutcome, lo: int, hi: int, tz: ZoneInfo
) -> None:
    """Messages of this meter ingest dead-lettered, as ticks along the bottom."""
    ev = result.evidence
    if ev is None:
        return
    own = f"{ev.prefix}/{fault.site}/{fault.meter}/"
    injected = {
        s.topic for s in ev.injected if s.meter_idx == ev.meter_index.get((fault.site, fault.meter))
    }
    at = [
        d.recv_ms
        for d in ev.dead_letters
        if (d.topic.startswith(own) or d.topic in injected) and lo <= d.recv_ms <= hi
    ]
    if at:
        ax.plot(
            _dt(np.asarray(at), tz),
            np.zeros(len(at)),
            "|",
            ms=14,
            mew=2,
            color="#762a83",
            transform=ax.get_xaxis_transform(),
            label=f"refused by ingest ({len(at)})",
        )


def _verdict(fault: FaultOutcome) -> str:
    if fault.kind in DETECTORS:
        if fault.found:
            return f"found by {fault.first_rule} after {fault.ttd_min:.0f} min"
        return "MISSED"
    return ("handled: " if fault.found else "NOT handled: ") + fault.detail.split(" (")[0]


def plot_summary(summary: Summary, path: Path) -> Path:
    """Recall per fault kind, time to detect p50/p95 and false alarms per rule."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), layout="constrained")
    kinds = summary.kinds
    names = [k.kind for k in kinds]
    recall = [0.0 if np.isnan(k.recall) else k.recall for k in kinds]
    colors = ["#2166ac" if k.kind in DETECTORS else "#5aae61" for k in kinds]
    ax = axes[0]
    ax.barh(names, recall, color=colors)
    for i, k in enumerate(kinds):
        ax.text(min(recall[i], 1.0) + 0.02, i, f"{k.found}/{k.faults}", va="center", fontsize=8)
    ax.set_xlim(0, 1.25)
    ax.invert_yaxis()
    ax.set_title("recall (blue: rules, green: ingest)")
    ax = axes[1]
    rule_kinds = [k for k in kinds if k.kind in DETECTORS]
    y = np.arange(len(rule_kinds))
    ax.barh(y - 0.2, [np.nan_to_num(k.ttd_p50_min) for k in rule_kinds], 0.4, label="p50")
    ax.barh(y + 0.2, [np.nan_to_num(k.ttd_p95_min) for k in rule_kinds], 0.4, label="p95")
    ax.set_yticks(y, [k.kind for k in rule_kinds])
    ax.invert_yaxis()
    ax.set_xscale("symlog", linthresh=10)
    ax.set_title("time to detect (minutes)")
    ax.legend(fontsize=8)
    ax = axes[2]
    rules = summary.rules
    ax.barh([r.rule for r in rules], [r.false_per_100md for r in rules], color="#d6604d")
    ax.invert_yaxis()
    ax.set_title("false alarms per 100 meter-days")
    fig.suptitle(
        f"seeds {', '.join(map(str, summary.seeds))} · {summary.meter_days:,.1f} meter-days · "
        f"{summary.firings} firings, {summary.unexplained} unexplained",
        fontsize=10,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
