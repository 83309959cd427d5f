"""Alerts of public interest as one short line in Italian and English, nothing internal.

    lines = await public_alerts(deps.alerts, policy, now_ms=now, days=7)

An alert is public when its rule is marked `public: true` in the cluster file (off by
default). Shown: open ones, and those resolved in the last `days`. Each line carries an
opaque id (a keyed hash, not the internal id or code), the state, the severity, a sentence
built here from the rule's type and quantity (never the rule's free text, a contact, a
comment, an assignee or the audit trail), the place (the site's name if the site is
public, else the territory's), and the times. The measured value and threshold are given
only for a public site: a private organisation's meter never shows through.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from ecocluster.api.alert_port import AlertFilter, AlertPort, AlertRecord
from ecocluster.api.public.air import iso_ms
from ecocluster.api.public.policy import PublicPolicy

__all__ = ["public_alerts", "public_id", "strip_private"]

_DAY_MS: Final = 86_400_000
_PAGE: Final = 500
#: quantity → (Italian, English, unit)
_QUANTITY: Final = {
    "pm10_ugm3": ("PM10", "PM10", "µg/m³"),
    "pm25_ugm3": ("PM2.5", "PM2.5", "µg/m³"),
    "no2_ugm3": ("Biossido di azoto (NO₂)", "Nitrogen dioxide (NO₂)", "µg/m³"),
    "o3_ugm3": ("Ozono (O₃)", "Ozone (O₃)", "µg/m³"),
    "so2_ugm3": ("Biossido di zolfo (SO₂)", "Sulphur dioxide (SO₂)", "µg/m³"),
    "co_mgm3": ("Monossido di carbonio (CO)", "Carbon monoxide (CO)", "mg/m³"),
    "co2_ppm": ("CO₂", "CO₂", "ppm"),
    "energy_kwh": ("Energia elettrica", "Electricity", "kWh"),
    "power_w": ("Potenza elettrica", "Electric power", "W"),
    "water_m3": ("Acqua", "Water", "m³"),
    "flow_lpm": ("Portata d'acqua", "Water flow", "l/min"),
    "temp_c": ("Temperatura", "Temperature", "°C"),
    "rh_pct": ("Umidità", "Humidity", "%"),
}
#: rule type → (Italian, English)
_WHAT: Final = {
    "threshold": ("oltre la soglia", "above the threshold"),
    "compliance": ("oltre il valore di legge", "above the legal standard"),
    "rate": ("variazione rapida", "rapid change"),
    "burst": ("aumento improvviso", "sudden rise"),
    "absence": ("dati non ricevuti", "no data received"),
    "stuck": ("sensore bloccato", "sensor stuck"),
    "night_flow": ("consumo notturno anomalo", "unusual night-time use"),
    "anomaly": ("valore insolito", "unusual value"),
}


def public_id(record: AlertRecord) -> str:
    """Stable and opaque: the internal id cannot be read back from it."""
    raw = f"{record.id}|{record.started_ms}".encode()
    return hashlib.blake2b(raw, key=b"ecocluster-public-alert", digest_size=9).hexdigest()


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _line(record: AlertRecord, policy: PublicPolicy) -> dict[str, Any]:
    rule = next((r for r in policy.cluster.rules if r.name == record.rule), None)
    quantity = (rule.quantity if rule is not None else None) or record.labels.get("quantity")
    q_it, q_en, unit = _QUANTITY.get(quantity or "", ("Allerta", "Alert", ""))
    w_it, w_en = _WHAT.get(rule.type if rule is not None else "", ("segnalazione", "notice"))
    place = policy.place(record.site)
    text_it, text_en = f"{q_it}: {w_it} — {place}", f"{q_en}: {w_en} — {place}"
    shows_value = record.site in policy.public_sites and record.value is not None
    if shows_value and record.value is not None:
        limit_it = "" if record.threshold is None else f", soglia {_fmt(record.threshold)}"
        limit_en = "" if record.threshold is None else f", threshold {_fmt(record.threshold)}"
        shown = " ".join(part for part in (_fmt(record.value), unit) if part)
        text_it += f" ({shown}{limit_it})"
        text_en += f" ({shown}{limit_en})"
    resolved = record.state == "resolved"
    if resolved:
        text_it, text_en = f"{text_it} — rientrato", f"{text_en} — resolved"
    return {
        "id": public_id(record),
        "state": "resolved" if resolved else "open",
        "severity": record.severity if record.severity in ("info", "critical") else "warning",
        "text_it": text_it,
        "text_en": text_en,
        "place": place,
        "since": iso_ms(record.started_ms),
        "resolved_at": iso_ms(record.resolved_ms) if resolved else None,
        # Internal, for the station's exceedances; removed before publishing.
        "_site": record.site,
        "_quantity": quantity,
        "_value": record.value if shows_value else None,
        "_threshold": record.threshold if shows_value else None,
        "_window": None if rule is None else (rule.model_extra or {}).get("window"),
    }


async def public_alerts(
    alerts: AlertPort | None, policy: PublicPolicy, *, now_ms: int, days: int
) -> list[dict[str, Any]]:
    """Open public alerts and those resolved in the last `days`, newest first. Keys that
    start with `_` are for this package only (see `strip_private`)."""
    if alerts is None or not policy.public_rules:
        return []
    cutoff = now_ms - days * _DAY_MS
    found: dict[str, AlertRecord] = {}
    for rule in sorted(policy.public_rules):
        for flt in (
            AlertFilter(rule=rule, state="firing", limit=_PAGE),
            AlertFilter(rule=rule, state="resolved", since_ms=cutoff, limit=_PAGE),
        ):
            for record in await alerts.list_alerts(flt):
                if record.rule not in policy.public_rules:
                    continue
                if record.state == "resolved" and (record.resolved_ms or 0) < cutoff:
                    continue
                found[record.id] = record
    ordered = sorted(found.values(), key=lambda r: (r.state != "firing", -r.started_ms))
    return [_line(r, policy) for r in ordered]


def strip_private(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in line.items() if not k.startswith("_")} for line in lines]
