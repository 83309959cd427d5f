"""The evaluation's table: on the terminal (rich), as CSV and as Markdown.

write_reports(summary, results, header, out_dir)   # eval.csv, eval-rules.csv,
print_report(console, summary, header)             # firings.csv, eval.md
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ecocluster.core.text import printable

from .run import RunResult
from .score import KindRow, Summary

__all__ = ["KIND_COLUMNS", "RULE_COLUMNS", "Header", "print_report", "write_reports"]

KIND_COLUMNS = (
    "fault kind",
    "handled by",
    "faults",
    "found",
    "recall",
    "precision",
    "false alarms /100 meter-days",
    "TTD p50 (min)",
    "TTD p95 (min)",
    "detail",
)
RULE_COLUMNS = ("rule", "type", "firings", "unexplained", "false alarms /100 meter-days")


@dataclass(frozen=True)
class Header:
    """What the run was: printed above the table and written at the top of eval.md."""

    scenario: str
    config: str
    seeds: Sequence[int]
    broker: str
    store: str
    warmup: str
    latency_label: str
    wall_s: float

    def lines(self, summary: Summary) -> list[str]:
        return [
            f"scenario {self.scenario}, seeds {', '.join(map(str, self.seeds))}; "
            f"rules from {self.config}",
            f"{summary.meter_days:,.1f} meter-days; broker: {self.broker}; store: {self.store}",
            f"baseline warm-up: {self.warmup}",
            f"rules tick every simulated minute in event time; {summary.firings} firings, "
            f"{summary.unexplained} unexplained = {_num(summary.false_per_100md, 2)} "
            "false alarms per 100 meter-days (all rules)",
            f"latency ({self.latency_label}): p50 {_num(summary.latency_p50_s, 3)} s, "
            f"p99 {_num(summary.latency_p99_s, 3)} s",
            f"{self.wall_s:.0f} s wall",
        ]


def _num(value: float, digits: int) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def kind_cells(row: KindRow) -> list[str]:
    return [
        row.kind,
        row.handled_by,
        str(row.faults),
        str(row.found),
        _num(row.recall, 2),
        _num(row.precision, 2),
        _num(row.false_per_100md, 2),
        _num(row.ttd_p50_min, 0),
        _num(row.ttd_p95_min, 0),
        row.detail,
    ]


def print_report(console: Console, summary: Summary, header: Header) -> None:
    for line in header.lines(summary):
        console.print(Text(printable(line)))
    kinds = Table(title="Detection per fault kind", title_justify="left")
    for i, name in enumerate(KIND_COLUMNS):
        kinds.add_column(name, justify="right" if 2 <= i <= 8 else "left", overflow="fold")
    for row in summary.kinds:
        style = "red" if row.faults and row.recall < 1 else None
        kinds.add_row(*(Text(printable(c)) for c in kind_cells(row)), style=style)
    console.print(kinds)
    if not summary.kinds:
        console.print("no faults in this scenario: every firing below is a false alarm")
    rules = Table(title="Firings per rule", title_justify="left")
    for i, name in enumerate(RULE_COLUMNS):
        rules.add_column(name, justify="right" if i >= 2 else "left")
    for r in summary.rules:
        cells = [r.rule, r.type, str(r.firings), str(r.unexplained), _num(r.false_per_100md, 2)]
        rules.add_row(*(Text(printable(c)) for c in cells))
    console.print(rules)


def write_reports(
    summary: Summary, results: Sequence[RunResult], header: Header, out_dir: Path
) -> list[Path]:
    """eval.csv (per kind), eval-rules.csv (per rule), firings.csv (every firing, with
    whether a fault explains it), faults.csv (every fault's outcome) and eval.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / n for n in ("eval.csv", "eval-rules.csv", "firings.csv", "faults.csv")]
    _csv(paths[0], KIND_COLUMNS, [kind_cells(r) for r in summary.kinds])
    _csv(
        paths[1],
        RULE_COLUMNS,
        [
            [r.rule, r.type, r.firings, r.unexplained, _num(r.false_per_100md, 3)]
            for r in summary.rules
        ],
    )
    _csv(
        paths[2],
        ("seed", "rule", "site", "meter", "at_ms", "explained", "latency_s"),
        [
            [
                res.score.seed,
                f.rule,
                f.site,
                f.meter,
                f.at_ms,
                int(e),
                _num(f.latency_s or math.nan, 4),
            ]
            for res in results
            for f, e in zip(res.score.firings, res.score.explained, strict=True)
        ],
    )
    _csv(
        paths[3],
        ("seed", "id", "kind", "site", "meter", "quantity", "start_ms", "end_ms", "found",
         "ttd_min", "first_rule", "detail"),
        [
            [res.score.seed, f.id, f.kind, f.site, f.meter, f.quantity or "", f.start_ms,
             f.end_ms, int(f.found), _num(f.ttd_min if f.ttd_min is not None else math.nan, 1),
             f.first_rule or "", f.detail]
            for res in results
            for f in res.score.faults
        ],
    )  # fmt: skip
    md = out_dir / "eval.md"
    md.write_text(markdown(summary, header))
    return [*paths, md]


def _csv(path: Path, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerows(rows)


def _md_cell(text: object) -> str:
    return printable(str(text)).replace("|", "\\|").replace("\n", " ")


def _md_table(columns: Sequence[str], rows: Sequence[Sequence[object]], right: set[int]) -> str:
    lines = ["| " + " | ".join(columns) + " |"]
    lines.append("|" + "|".join("---:" if i in right else "---" for i in range(len(columns))) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(summary: Summary, header: Header) -> str:
    parts = ["# Evaluation: " + _md_cell(header.scenario), ""]
    parts += [f"- {_md_cell(line)}" for line in header.lines(summary)]
    parts += ["", "## Detection per fault kind", ""]
    parts.append(_md_table(KIND_COLUMNS, [kind_cells(r) for r in summary.kinds], set(range(2, 9))))
    parts += ["", "## Firings per rule", ""]
    parts.append(
        _md_table(
            RULE_COLUMNS,
            [
                [r.rule, r.type, r.firings, r.unexplained, _num(r.false_per_100md, 2)]
                for r in summary.rules
            ],
            {2, 3, 4},
        )
    )
    return "\n".join(parts) + "\n"
