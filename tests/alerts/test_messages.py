"""Messages: SMS within 160 GSM-7 characters with code and link intact, Italian and English,
territory overrides of templates, the PNG chart."""

from __future__ import annotations

from pathlib import Path

from ecocluster.alerts.chart import line_chart_png
from ecocluster.alerts.gsm7 import septets, to_gsm7
from ecocluster.alerts.messages import AlertView, Renderer, format_value


def _view(**kw: object) -> AlertView:
    base = dict(
        id=1,
        code="4821",
        rule="power-overload",
        severity="critical",
        state="firing",
        org="hotel",
        site="lago",
        site_name="Hotel al Lago – Cerreto Laghi (è più lungo " * 3,
        meter="em-01",
        quantity="power_w",
        value_text=format_value(72_123.0, "power_w"),
        threshold_text=format_value(60_000.0, "power_w"),
        since_local="01/01 09:00",
        ended_local="",
        description="Potenza oltre il contratto ≥ 60 kW",
        link="https://eco.example.org/a/BLyuhg5kdXR5.GHwq6HcpN6UiyY75",
    )
    base.update(kw)
    return AlertView(**base)  # type: ignore[arg-type]


def test_sms_fits_160_gsm7_and_keeps_code_and_link() -> None:
    for lang in ("it", "en"):
        text = Renderer().render("firing", [_view()], language=lang, territory="T", contact="c")
        assert septets(text.sms) <= 160 and to_gsm7(text.sms) == text.sms
        assert text.sms.endswith("ACK 4821 https://eco.example.org/a/BLyuhg5kdXR5.GHwq6HcpN6UiyY75")
    it = Renderer().render("firing", [_view()], language="it", territory="T", contact="c")
    assert it.sms.startswith("CRITICO") and "72.1 kW" in it.sms
    en = Renderer().render("resolved", [_view()], language="en", territory="T", contact="c")
    assert en.subject.startswith("[RESOLVED]") and "ACK" not in en.sms


def test_html_escapes_and_territory_override(tmp_path: Path) -> None:
    nasty = _view(description="<script>alert(1)</script>")
    html = Renderer().render("firing", [nasty], language="en", territory="T", contact="c").html
    assert "<script>" not in html and "&lt;script&gt;" in html
    (tmp_path / "it").mkdir()
    (tmp_path / "it" / "subject.txt").write_text("ALLARME {{ alerts[0].code }}")
    text = Renderer(tmp_path).render("firing", [_view()], language="it", territory="T", contact="c")
    assert text.subject == "ALLARME 4821" and "4821" in text.body  # others keep the shipped ones


def test_chart_is_a_png() -> None:
    png = line_chart_png([0, 60_000, 120_000], [50.0, 70.0, 72.0], threshold=60.0, since_ms=60_000)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 200
