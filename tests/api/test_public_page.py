"""The public page (issue 17) in headless Chromium (Debian's, driven by Playwright) with every
non-loopback request blocked, served by the real app under uvicorn: a public station seeded
at EAQI band 3 shows its level word in Italian and English, a 48-hour chart with points and a
gap, the limit exceeded, the energy figure against last year, the public alert lines, a
`<script>` name as text, no sideways scroll at 390 px; screenshots desktop and phone go to
`$ECOCLUSTER_SCREENSHOTS/public-*.png` (an existing directory, e.g. `docs/`; a temporary one
otherwise). One test fulfils the summary itself, for the edge cases the seeded backend
does not produce (nulls, empty lists, a failing fetch, the 5-minute refresh)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import orjson
import playwright.async_api as playwright_api
import pytest

from ecocluster.api import ApiDeps, HotWindowLive, TokenStore
from ecocluster.api.stage import ApiStage
from ecocluster.core.registry import Cluster, load_cluster
from ecocluster.core.settings import Settings
from ecocluster.core.types import ReadingBatch
from ecocluster.ingest.stores.memory import MemoryStore
from ecocluster.rules.engine import RuleEngine
from tests.api.conftest import (
    NOW,
    STEP,
    TERRITORY,
    Clock,
    World,
    day_of_readings,
    make_tokens,
    write_territory,
)
from tests.api.memory_alerts import MemoryAlerts

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
#: Screenshots go to a temporary directory; set ECOCLUSTER_SCREENSHOTS to refresh `docs/`.
DOCS = Path(os.environ.get("ECOCLUSTER_SCREENSHOTS") or tempfile.mkdtemp(prefix="public-shots-"))
EVIL = "<script>window.__pwned = 1</script> Passo <b>"
YEAR_MS = 365 * 86_400_000
HOUR = 3_600_000
if not Path(CHROMIUM).exists():
    pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium", pytrace=False)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


#: A public body's air station named with markup, a public rule, and its alert.
STATION = {
    "id": "cerreto-air",
    "org": "comune",
    "name": EVIL,
    "category": "air_station",
    "lat": 44.30,
    "lon": 10.23,
    "altitude_m": 1340.0,
}
#: Hourly means the station reads (µg/m³): PM10 60 is EAQI band 3 (45 < v ≤ 120) and above
#: the daily limit value 50; PM2.5 10, NO2 20 are band 2, O3 50 band 1: band 3 set by PM10.
AIR = {"pm10_ugm3": 60.0, "pm25_ugm3": 10.0, "no2_ugm3": 20.0, "o3_ugm3": 50.0}
#: PM10 hours with no readings (hours before NOW): a gap in the chart, not a zero.
PM10_GAP_H = range(30, 33)


def public_territory(path: Path) -> Path:
    doc = copy.deepcopy(TERRITORY)
    doc["organisations"].append({"id": "comune", "name": "Comune di Valle", "kind": "public"})
    doc["sites"].append(STATION)
    doc["meters"].append({"id": "aq-1", "site": "cerreto-air", "quantities": sorted(AIR)})
    doc["rules"] = [
        {
            "name": "pm10-daily-limit",
            "type": "threshold",
            "quantity": "pm10_ugm3",
            "above": 50,
            "window": "24h",
            "min_coverage": 0.75,
            "severity": "warning",
            "match": {"category": "air_station"},
            "public": True,
        },
    ]
    return write_territory(path, doc)


def air_readings(cluster: Cluster, end_ms: int, hours: int = 80) -> ReadingBatch:
    """The station's pollutants every 5 min over `hours`, the PM10 gap left out."""
    ts = np.arange(end_ms - hours * HOUR, end_ms, STEP, dtype=np.int64)
    idx, all_ts, values = [], [], []
    for i, key in enumerate(cluster.series):
        if key.site != STATION["id"]:
            continue
        keep = ts
        if key.quantity == "pm10_ugm3":
            ago = (end_ms - ts - 1) // HOUR
            keep = ts[~np.isin(ago, list(PM10_GAP_H))]
        idx.append(np.full(keep.shape, i, np.int64))
        all_ts.append(keep)
        values.append(np.full(keep.shape, AIR[key.quantity]))
    v = np.concatenate(values)
    return ReadingBatch(
        cluster.series, np.concatenate(idx), np.concatenate(all_ts), v, np.full(v.shape, np.nan)
    )


async def public_world(tmp_path: Path) -> World:
    """The API tests' two-organisation world (`build_world`'s parts) plus the air station,
    the same days of last year's energy and water, and a public alert on the station."""
    plain = load_cluster(write_territory(tmp_path / "private.yaml"))
    cluster = load_cluster(public_territory(tmp_path / "public.yaml"))
    store = MemoryStore()
    await store.open()
    await store.write(day_of_readings(plain))  # 26 h up to NOW
    await store.write(day_of_readings(plain, NOW - YEAR_MS, hours=30))
    await store.write(air_readings(cluster, NOW))
    clock = Clock()
    alerts = MemoryAlerts(clock)
    labels = {"org": "comune", "site": "cerreto-air", "meter": "aq-1", "quantity": "pm10_ugm3"}
    alerts.fire("pm10-daily-limit", labels, value=60.0, threshold=50.0, at_ms=NOW - 2 * HOUR)
    old = alerts.fire("pm10-daily-limit", labels, value=55.0, threshold=50.0, at_ms=NOW - 30 * HOUR)
    clock.now_ms = NOW - 26 * HOUR
    alerts.resolve(old.id)
    clock.now_ms = NOW
    alerts.fire("burst", {"org": "zeta", "site": "zeta-dairy", "meter": "wm-09"})  # not public
    tokens = TokenStore(tmp_path / "tokens.sqlite")
    engine = RuleEngine(cluster)
    deps = ApiDeps(
        cluster=cluster,
        settings=Settings(data_dir=tmp_path / "data", api_rate_per_s=0, api_port=0),
        store=store,
        live=HotWindowLive(engine),
        alerts=alerts,
        tokens=tokens,
        clock=clock,
    )
    return World(cluster, deps, alerts, engine, make_tokens(tokens))


@contextlib.asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[tuple[str, World]]:
    """The real app on `public_world` under uvicorn on a free loopback port."""
    world = await public_world(tmp_path)
    stage = ApiStage(world.deps, host="127.0.0.1", port=0)
    ready = asyncio.Event()
    task = asyncio.create_task(stage.run(ready), name="test.public.api")
    try:
        await asyncio.wait_for(ready.wait(), 20)
        yield stage.url, world
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        world.deps.token_store.close()


async def _context(browser, blocked: list[str], **kwargs):  # type: ignore[no-untyped-def]
    context = await browser.new_context(**kwargs)

    async def guard(route):  # type: ignore[no-untyped-def]
        if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
            await route.fallback()
        else:
            blocked.append(route.request.url)
            await route.abort()

    await context.route("**/*", guard)
    return context


def _watch(page, errors: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Script errors and console errors (a CSP violation is one) fail the test."""
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)


def _pct(value: float) -> str:
    sign = "+" if value > 0 else "−" if value < 0 else "±"
    return f"{sign}{abs(value):.1f} %".replace(".", ",")


#: The smallest computed font size of any visible element holding text.
SMALLEST_TEXT_PX = """() => Math.min(...[...document.querySelectorAll('body *')]
    .filter((e) => e.offsetParent && [...e.childNodes].some(
        (c) => c.nodeType === 3 && c.textContent.trim()))
    .map((e) => parseFloat(getComputedStyle(e).fontSize)))"""

#: WCAG contrast of the level word on each of the six EAQI band colours (the page's CSS).
BAND_CONTRASTS = """() => [1, 2, 3, 4, 5, 6].map((n) => {
    const box = document.createElement("div");
    box.className = "eaqi band-" + n;
    const word = document.createElement("p");
    word.className = "level";
    word.textContent = "x";
    box.appendChild(word);
    document.body.appendChild(box);
    const lum = (css) => {
        const [r, g, b] = css.match(/[0-9.]+/g).slice(0, 3).map((v) => {
            const c = Number(v) / 255;
            return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
        });
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const a = lum(getComputedStyle(word).color), b = lum(getComputedStyle(box).backgroundColor);
    box.remove();
    return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
})"""


async def test_public_page_on_the_real_backend(tmp_path: Path) -> None:
    blocked: list[str] = []
    errors: list[str] = []
    async with serving(tmp_path) as (url, _world), playwright_api.async_playwright() as pw:
        async with httpx.AsyncClient(base_url=url) as http:
            summary = (await http.get("/api/v1/public/summary")).raise_for_status().json()
        station = summary["stations"][0]
        assert (station["eaqi"]["band"], station["eaqi"]["pollutant"]) == (3, "pm10")
        pm10 = next(s for s in station["chart"]["series"] if s["pollutant"] == "pm10")
        points = sum(p[1] is not None for p in pm10["points"])
        assert 40 <= points <= 45  # 48 hours less the gap
        energy = next(c for c in summary["consumption"] if c["quantity"] == "energy_kwh")
        assert 100 < energy["this_month"] < 1000 and energy["change_pct"] is not None
        by_state = {a["state"]: a for a in summary["alerts"]}
        assert set(by_state) == {"open", "resolved"}

        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        ctx = await _context(browser, blocked, viewport=DESKTOP, locale="it-IT")
        page = await ctx.new_page()
        _watch(page, errors)
        await page.goto(f"{url}/public")
        card = page.locator('article.station[data-station="cerreto-air"]')
        await playwright_api.expect(card.locator(".eaqi .level")).to_have_text("Moderata")
        assert await page.evaluate("document.documentElement.lang") == "it"
        await playwright_api.expect(card.locator(".eaqi .detail")).to_contain_text(
            "livello 3 di 6 · determinata da PM10 · alle mar 24 nov, 11:00"
        )
        # the station's name is markup, shown as text and never run
        await playwright_api.expect(card.locator("h3")).to_have_text(EVIL)
        assert await page.evaluate("window.__pwned") is None
        assert await page.locator("main script, h3 b, .meta b").count() == 0
        line = card.locator('g.series[data-pollutant="pm10"] path.line')
        assert await line.get_attribute("data-n") == str(points)
        assert (await line.get_attribute("d") or "").count("M") == 2  # a gap, not a zero
        assert await card.locator("svg[role=img][aria-label]").count() == 1
        assert await card.locator("details.table tbody tr").count() == 48
        await playwright_api.expect(card.locator("ul.limits li").first).to_contain_text(
            "PM10 oltre il valore limite (media 24 ore): 60 µg/m³, limite 50 µg/m³"
        )
        use = page.locator('article.use[data-quantity="energy_kwh"]')
        await playwright_api.expect(use.locator(".figure")).to_have_text(
            f"{round(energy['this_month'])} kWh"
        )
        await playwright_api.expect(use.locator(".period")).to_contain_text("mese in corso")
        await playwright_api.expect(use.locator(".change")).to_have_text(
            f"{_pct(energy['change_pct'])} rispetto al 2025"
        )
        items = page.locator("#alerts li.alert")
        await playwright_api.expect(items).to_have_count(2)
        opened = page.locator(f'li.alert.open[data-alert="{by_state["open"]["id"]}"]')
        await playwright_api.expect(opened.locator(".what")).to_have_text(
            by_state["open"]["text_it"]
        )
        await playwright_api.expect(opened.locator(".meta")).to_contain_text(EVIL + " · dalle")
        await playwright_api.expect(items.last.locator(".meta")).to_contain_text("risolto alle")
        contrasts = await page.evaluate(BAND_CONTRASTS)
        assert min(contrasts) >= 4.5, contrasts
        hrefs = await page.eval_on_selector_all("footer a[href^='/']", "as => as.map(a => a.href)")
        assert len(hrefs) == 9, hrefs  # the catalogue, and 4 datasets as CSV and JSON
        async with httpx.AsyncClient() as http:
            for href in hrefs:
                assert (await http.get(href)).status_code == 200, href
        await page.screenshot(path=str(DOCS / "public-desktop.png"), full_page=True)

        await page.click('button[data-lang="en"]')
        await playwright_api.expect(card.locator(".eaqi .level")).to_have_text("Moderate")
        assert await page.evaluate("document.documentElement.lang") == "en"
        assert "lang=en" in page.url
        await playwright_api.expect(opened.locator(".what")).to_have_text(
            by_state["open"]["text_en"]
        )
        await playwright_api.expect(use.locator(".period")).to_contain_text("month to date")
        await page.reload()  # the choice stays
        await playwright_api.expect(card.locator(".eaqi .level")).to_have_text("Moderate")

        phone = await _context(
            browser,
            blocked,
            viewport=PHONE,
            locale="en-GB",
            is_mobile=True,
            has_touch=True,
            device_scale_factor=2,
        )
        mobile = await phone.new_page()
        _watch(mobile, errors)
        await mobile.goto(f"{url}/public")  # no ?lang=: English from the browser's language
        level = mobile.locator('article.station[data-station="cerreto-air"] .eaqi .level')
        await playwright_api.expect(level).to_have_text("Moderate")
        width = await mobile.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"]  # no sideways scrolling on a phone
        assert await mobile.evaluate(SMALLEST_TEXT_PX) >= 12
        await mobile.screenshot(path=str(DOCS / "public-phone.png"), full_page=True)
        await browser.close()
    assert not errors, errors
    assert not blocked, f"the public page tried to reach outside: {blocked}"


def sparse_summary() -> dict[str, Any]:
    """A contract-shaped summary with nulls and empty lists everywhere they are allowed."""
    end = NOW // HOUR * HOUR
    hours = [iso(end - (48 - i) * HOUR) for i in range(48)]
    return {
        "territory": {"id": "valley", "name": "Valley", "timezone": "Europe/Rome"},
        "generated_at": iso(NOW),
        "licence": {"id": "CC-BY-4.0", "name": "CC BY 4.0", "url": None, "attribution": "x"},
        "stations": [
            {
                "id": "quiet-air",
                "name": "Lago Quieto",
                "lat": 44.31,
                "lon": 10.2,
                "altitude_m": None,
                "eaqi": {
                    "band": None,
                    "level": None,
                    "pollutant": None,
                    "at": None,
                    "missing": ["o3"],
                    "pollutants": [
                        {
                            "pollutant": "pm10",
                            "value": None,
                            "unit": "µg/m³",
                            "averaging": "1h",
                            "band": None,
                            "captured": False,
                        }
                    ],
                },
                "exceedances": [],
                "chart": {
                    "from": hours[0],
                    "to": iso(end),
                    "step_s": 3600,
                    "series": [
                        {"pollutant": "pm10", "unit": "µg/m³", "points": [[h, None] for h in hours]}
                    ],
                },
            }
        ],
        "consumption": [
            {
                "quantity": "energy_kwh",
                "unit": "kWh",
                "month": "2026-11",
                "this_month": None,
                "same_month_last_year": None,
                "change_pct": None,
                "comparable": False,
                "to_date": True,
            }
        ],
        "alerts": [],
    }


async def test_public_page_route_fulfilled_nulls_empty_lists_offline_and_refresh(
    tmp_path: Path,
) -> None:
    """The summary fulfilled here: nulls and empty lists; a refresh after 5 minutes; then the
    summary failing: the last data stays, with its time, or, with nothing kept, "no data"."""
    blocked: list[str] = []
    errors: list[str] = []
    calls: list[str] = []
    body = orjson.dumps(sparse_summary())
    fail = False

    async def summary(route):  # type: ignore[no-untyped-def]
        calls.append(route.request.url)
        if fail:
            await route.abort()
        else:
            await route.fulfill(status=200, body=body, content_type="application/json")

    async with serving(tmp_path) as (url, _world), playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        ctx = await _context(browser, blocked, viewport=PHONE, locale="it-IT")
        await ctx.route("**/api/v1/public/summary", summary)
        page = await ctx.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.clock.install()
        await page.goto(f"{url}/public?lang=en")
        card = page.locator("article.station")
        await playwright_api.expect(card.locator(".eaqi .level")).to_have_text("No data")
        await playwright_api.expect(card.locator(".eaqi .detail")).to_have_text("missing: O₃")
        await playwright_api.expect(card.locator(".pollutant dd")).to_have_text("not enough data")
        await playwright_api.expect(card.locator(".limits")).to_have_text(
            "Not enough data to check limits and thresholds."
        )
        await playwright_api.expect(card.locator(".plot")).to_have_text(
            "No data in the last 48 hours."
        )
        use = page.locator('article.use[data-quantity="energy_kwh"]')
        await playwright_api.expect(use.locator(".figure")).to_have_text("—")
        await playwright_api.expect(use.locator(".last")).to_have_text(
            "Same days in 2025: — (no data for 2025)"
        )
        await playwright_api.expect(use.locator(".change")).to_have_text("Change: —")
        await playwright_api.expect(page.locator("#alerts li.empty")).to_have_text(
            "No current or recent notices."
        )
        await playwright_api.expect(page.locator("#status")).to_contain_text("Data updated")
        assert len(calls) == 1  # one fetch per load
        await page.clock.run_for(4 * 60_000)
        assert len(calls) == 1
        await page.clock.run_for(61_000)
        for _ in range(50):
            if len(calls) == 2:
                break
            await asyncio.sleep(0.1)
        assert len(calls) == 2  # refreshed after 5 minutes while visible

        fail = True
        await page.reload()
        await playwright_api.expect(page.locator("#status.warn")).to_have_text(
            "Could not update: this is the data of Tue 24 Nov, 12:00."
        )
        await playwright_api.expect(card.locator(".eaqi .level")).to_have_text("No data")

        fresh = await _context(browser, blocked, viewport=PHONE, locale="it-IT")
        await fresh.route("**/api/v1/public/summary", summary)
        cold = await fresh.new_page()
        cold.on("pageerror", lambda exc: errors.append(str(exc)))
        await cold.goto(f"{url}/public")
        await playwright_api.expect(cold.locator("#status.warn")).to_have_text(
            "Nessun dato disponibile al momento. Riproveremo tra poco."
        )
        assert await cold.locator("article.station, article.use, li.alert").count() == 0
        await browser.close()
    assert not errors, errors
    assert not blocked, blocked
