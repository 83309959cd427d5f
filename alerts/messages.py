"""Notification texts from Jinja2 templates (Italian and English; a territory overrides any
file by putting one of the same name in `alert_templates_dir/{lang}/`).

One rendering gives every form a channel may need: an e-mail subject and HTML body (the
plain part is derived from it by Apprise), a chat/webhook text, and an SMS of at most 160
GSM-7 characters whose tail (code and short link) is never cut.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from ecocluster.alerts.gsm7 import fit_sms

__all__ = ["AlertView", "Rendered", "Renderer", "format_value"]

_LANGUAGES = ("it", "en")
_SEVERITY_IT = {"critical": "critico", "warning": "avviso", "info": "info"}
_UNITS = {
    "power_w": ("W", [(1e6, "MW"), (1e3, "kW")]),
    "energy_kwh": ("kWh", [(1e3, "MWh")]),
    "water_m3": ("m3", []),
    "flow_lpm": ("l/min", []),
    "pm10_ugm3": ("ug/m3", []),
    "pm25_ugm3": ("ug/m3", []),
    "no2_ugm3": ("ug/m3", []),
    "o3_ugm3": ("ug/m3", []),
    "so2_ugm3": ("ug/m3", []),
    "co_mgm3": ("mg/m3", []),
    "co2_ppm": ("ppm", []),
    "temp_c": ("C", []),
    "rh_pct": ("%", []),
}


def format_value(value: float | None, quantity: str | None) -> str:
    if value is None or not math.isfinite(value):
        return ""
    unit, scales = _UNITS.get(quantity or "", ("", []))
    for factor, name in scales:
        if abs(value) >= factor:
            return f"{value / factor:.3g} {name}"
    text = f"{value:.4g}"
    return f"{text} {unit}".strip()


@dataclass(frozen=True, slots=True)
class AlertView:
    """What templates see of one alert (no secrets, ready-formatted values)."""

    id: int
    code: str
    rule: str
    severity: str
    state: str
    org: str
    site: str
    site_name: str
    meter: str
    quantity: str
    value_text: str
    threshold_text: str
    since_local: str
    ended_local: str
    description: str | None
    link: str

    @property
    def severity_it(self) -> str:
        return _SEVERITY_IT.get(self.severity, self.severity)


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    body: str
    html: str
    sms: str


def local_time(ms: int | None, tz: str) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).strftime("%d/%m %H:%M")


class Renderer:
    """Usage: `Renderer(override_dir).render("firing", views, language="it", …)`."""

    def __init__(self, override_dir: Path | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if override_dir is not None:
            loaders.append(jinja2.FileSystemLoader(str(override_dir)))
        loaders.append(jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")))
        self._env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=jinja2.select_autoescape(["html"]),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=False,
        )

    def _one(self, lang: str, name: str, context: Mapping[str, Any]) -> str:
        return self._env.get_template(f"{lang}/{name}").render(**context).strip()

    def render(
        self,
        kind: str,
        alerts: Sequence[AlertView],
        *,
        language: str,
        territory: str,
        contact: str,
        count: int | None = None,
        chart: bool = False,
    ) -> Rendered:
        lang = language if language in _LANGUAGES else "en"
        codes = " ".join(a.code for a in alerts[:20])
        context: dict[str, Any] = {
            "kind": kind,
            "alerts": list(alerts),
            "territory": territory,
            "contact": contact,
            "count": count if count is not None else len(alerts),
            "codes": codes,
            "chart": chart,
        }
        subject = " ".join(self._one(lang, "subject.txt", context).split())
        body = self._one(lang, "chat.txt", context)
        html = self._one(lang, "email.html", {**context, "subject": subject, "text": body})
        head = " ".join(self._one(lang, "sms.txt", context).split())
        tail = ""
        if alerts and kind not in ("resolved", "summary", "test"):
            tail = f" ACK {alerts[0].code} {alerts[0].link}"
        return Rendered(subject, body, html, fit_sms(head, tail))
