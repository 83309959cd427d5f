"""The dashboard in headless Chromium (Debian's, driven by Playwright) against a real node:
it loads with every non-loopback request blocked, a value published on MQTT appears within
2 s, the ack button acknowledges and the audit trail shows who; screenshots of both pages,
desktop and a 390 px phone, are kept under the test's tmp dir (paths printed)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import playwright.async_api as playwright_api
import pytest

from tests.api.node import running_node, wall_ms
from tests.ingest.conftest import Publisher
from tests.services import MosquittoServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PHONE = {"width": 390, "height": 844}
if not Path(CHROMIUM).exists():
    pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium", pytrace=False)
DESKTOP = {"width": 1280, "height": 900}


async def _context(browser, blocked: list[str], **kwargs):  # type: ignore[no-untyped-def]
    context = await browser.new_context(**kwargs)

    async def guard(route):  # type: ignore[no-untyped-def]
        host = urlsplit(route.request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            await route.continue_()
        else:
            blocked.append(route.request.url)
            await route.abort()

    await context.route("**/*", guard)
    return context


async def test_dashboard_live_value_ack_and_screenshots(
    tmp_path: Path, territory_path: Path, mosquitto: MosquittoServer, topic_prefix: str
) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    blocked: list[str] = []
    errors: list[str] = []
    publisher = Publisher(mosquitto.port)
    try:
        async with (
            running_node(tmp_path, territory_path, mosquitto, topic_prefix) as node,
            playwright_api.async_playwright() as pw,
        ):
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            ctx = await _context(browser, blocked, viewport=DESKTOP, locale="it-IT")
            page = await ctx.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            token = node.tokens["facility_manager"]
            await page.goto(f"{node.url}/dashboard#token={token}&page=sites")
            power = page.locator('.card[data-site="alpine-hotel"] [data-kpi="power_w"] b')
            await playwright_api.expect(power).to_have_text("5 kW", timeout=10_000)
            await page.wait_for_selector('#conn[data-state="on"]', timeout=10_000)
            await page.wait_for_selector(
                '.card[data-site="alpine-hotel"] .chart-live svg path.line',
                state="attached",
                timeout=10_000,
            )
            assert await page.locator('.card[data-site="zeta-dairy"]').count() == 0

            body = orjson.dumps({"ts": wall_ms(), "m": {"power_w": 43210.0}})
            await asyncio.to_thread(
                publisher.publish, [(f"{topic_prefix}/alpine-hotel/em-01/data", body)]
            )
            sent = time.monotonic()
            await playwright_api.expect(power).to_have_text("43,2 kW", timeout=2_000)
            latency_s = time.monotonic() - sent
            assert latency_s < 2.0
            await page.screenshot(path=str(shots / "sites-desktop.png"), full_page=True)

            alert = page.locator("li.alert.critical")
            await alert.locator("button.ack").click()
            await playwright_api.expect(page.locator("li.alert.critical .audit")).to_contain_text(
                "facility_manager user", timeout=5_000
            )
            await playwright_api.expect(page.locator("li.alert.critical .acked")).to_contain_text(
                "Preso in carico da facility_manager user"
            )
            acked = [a for a in node.alerts.alerts.values() if a.acked_by]
            assert [(a.labels["site"], a.acked_by, a.ack_channel) for a in acked] == [
                ("alpine-hotel", "facility_manager user", "api")
            ]

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
            mobile.on("pageerror", lambda exc: errors.append(str(exc)))
            await mobile.goto(f"{node.url}/dashboard#token={token}&page=sites")
            await playwright_api.expect(
                mobile.locator('.card[data-site="alpine-hotel"] [data-kpi="power_w"] b')
            ).to_have_text("43.2 kW", timeout=10_000)
            width = await mobile.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"]  # no sideways scrolling on a phone
            await mobile.screenshot(path=str(shots / "sites-phone.png"), full_page=True)

            coordinator = node.tokens["coordinator"]
            for name, context in (("desktop", ctx), ("phone", phone)):
                tpage = await context.new_page()
                tpage.on("pageerror", lambda exc: errors.append(str(exc)))
                await tpage.goto(f"{node.url}/dashboard#token={coordinator}&page=territory")
                await tpage.wait_for_selector(
                    "#map svg circle.critical, #map svg circle.warning", timeout=10_000
                )
                assert await tpage.locator("#map svg g[data-site]").count() == 3
                await playwright_api.expect(tpage.locator("#org-table tr[data-org]")).to_have_count(
                    2
                )
                if name == "phone":
                    width = await tpage.evaluate("document.documentElement.scrollWidth")
                    assert width <= PHONE["width"]
                await tpage.screenshot(path=str(shots / f"territory-{name}.png"), full_page=True)
            await browser.close()
    finally:
        publisher.close()
    print(f"\ndashboard screenshots: {shots}")
    for png in sorted(shots.glob("*.png")):
        assert png.stat().st_size > 10_000, png
        print(f"  {png}")
    assert not errors, errors
    assert not blocked, f"the dashboard tried to reach outside: {blocked}"
