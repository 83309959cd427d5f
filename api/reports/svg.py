"""Tiny inline-SVG charts for printable pages: horizontal bars and monthly columns. No
JavaScript, no fonts fetched, every label escaped."""

from __future__ import annotations

from html import escape

__all__ = ["bars", "columns"]


def _fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}".replace(",", " ")
    return f"{value:.3g}"


def bars(items: list[tuple[str, float]], unit: str, *, width: int = 640) -> str:
    """One horizontal bar per (label, value), longest = full width."""
    if not items:
        return ""
    top = max(v for _, v in items) or 1.0
    row, label_w = 22, 190
    height = row * len(items) + 6
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%"'
        f' xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, (label, value) in enumerate(items):
        y = 3 + i * row
        w = max(0.0, (width - label_w - 110) * value / top)
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 7}"></rect>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 15}">{escape(_fmt(value))}'
            f" {escape(unit)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def columns(items: list[tuple[str, float]], unit: str, *, width: int = 640) -> str:
    """One column per (label, value), e.g. the months of a year."""
    if not items:
        return ""
    top = max(v for _, v in items) or 1.0
    height, base, left = 200, 170, 8
    step = (width - left) / len(items)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%"'
        f' xmlns="http://www.w3.org/2000/svg"><title>{escape(unit)}</title>'
    ]
    for i, (label, value) in enumerate(items):
        h = (base - 20) * value / top
        x = left + i * step
        parts.append(
            f'<rect x="{x + 3:.1f}" y="{base - h:.1f}" width="{step - 6:.1f}"'
            f' height="{h:.1f}"></rect>'
            f'<text x="{x + step / 2:.1f}" y="{base + 16}" text-anchor="middle">'
            f"{escape(label)}</text>"
            f'<text class="v" x="{x + step / 2:.1f}" y="{base - h - 4:.1f}"'
            f' text-anchor="middle">{escape(_fmt(value))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
