"""The dev UI in a real browser: headless Chromium (Debian's ``chromium``, driven by
Playwright for Python with that executable) against the app served by uvicorn on
loopback, the engine in the server's loop as ``python -m eventbus serve`` runs it.

Skipped without Playwright or a Chromium executable (``$EVENTBUS_CHROMIUM``, else
``chromium`` on the PATH); ``.ci/run`` installs both. Every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import eventbus
from eventbus.server import create_app
from tests.server.test_loopback import uvicorn_serving

CHROMIUM = os.environ.get("EVENTBUS_CHROMIUM") or shutil.which("chromium")
try:
    import playwright.sync_api as _playwright  # noqa: F401
except ImportError:  # pragma: no cover - the test extra installs it
    PLAYWRIGHT = False
else:
    PLAYWRIGHT = True

pytestmark = pytest.mark.skipif(
    not (PLAYWRIGHT and CHROMIUM),
    reason="needs Playwright and a Chromium executable (apt-get install chromium)",
)
#: Flags for a root user on a machine with no network but loopback.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 15_000


@pytest.fixture
def served() -> Iterator[tuple[eventbus.Inngest, str]]:
    client = eventbus.Inngest("shop")

    @client.create_function(fn_id="remind", trigger=eventbus.TriggerEvent(event="shop/cart"))
    async def remind(ctx: eventbus.Context) -> str:
        await ctx.step.run("note", lambda: "noted")
        await ctx.step.sleep("a-day", "1d")
        return "reminded"

    with uvicorn_serving(create_app(client), lifespan="on") as origin:
        yield client, origin


def test_a_browser_sends_watches_cancels_and_reruns(
    served: tuple[eventbus.Inngest, str], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    client, origin = served
    shots = Path(os.environ.get("EVENTBUS_UI_SCREENSHOTS") or tmp_path)
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.set_default_timeout(WAIT_MS)
            expect.set_options(timeout=WAIT_MS)

            # The runs page, open while an event arrives over the Event API: the new run
            # appears without a reload.
            page.goto(f"{origin}/ui/runs")
            expect(page.locator("h2")).to_have_text("Runs")
            answer = httpx.post(
                f"{origin}/e/key", json={"name": "shop/cart", "data": {"cart": 1}}, timeout=10
            )
            (first_event,) = answer.json()["ids"]
            first_run = _wait_for_run(origin, first_event)
            expect(page.get_by_role("link", name=first_run)).to_be_visible()

            # A test event from the form: its page lists the run it started.
            page.goto(f"{origin}/ui/send")
            page.fill("input[name=name]", "shop/cart")
            page.fill("textarea[name=data]", '{"cart": 2}')
            page.click("button:has-text('Send')")
            expect(page.locator("h2")).to_have_text("Event shop/cart")
            expect(page.locator("pre").first).to_contain_text('"cart": 2')
            second_event = page.url.rsplit("/", 1)[1]
            page.screenshot(path=str(shots / "event.png"), full_page=True)
            run_link = page.locator("a[href^='/ui/runs/']").first
            expect(run_link).to_be_visible()
            run_link.click()

            # Its timeline: the step done, the sleep under way; cancel, then rerun.
            expect(page.locator("h2")).to_contain_text("Run ")
            expect(page.locator("table")).to_contain_text("note")
            expect(page.locator("table")).to_contain_text("sleeps until")
            page.screenshot(path=str(shots / "run.png"), full_page=True)
            page.click("button:has-text('Cancel')")
            expect(page.locator("main p").nth(0)).to_contain_text("Cancelled")
            page.click("button:has-text('Rerun')")
            expect(page.locator("main")).to_contain_text("rerun of")

            page.goto(f"{origin}/ui/events")
            page.screenshot(path=str(shots / "events.png"), full_page=True)
            page.goto(f"{origin}/ui/functions")
            expect(page.locator("table")).to_contain_text("shop-remind")
            page.screenshot(path=str(shots / "functions.png"), full_page=True)
            page.goto(f"{origin}/ui/runs")
            page.screenshot(path=str(shots / "runs.png"), full_page=True)
        finally:
            browser.close()
    runs = httpx.get(f"{origin}/v1/events/{second_event}/runs", timeout=10).json()["data"]
    assert sorted(run["status"] for run in runs) == [
        "Cancelled",
        "Sleeping",
    ]  # and its rerun, asleep again
    assert client.app_id == "shop"


def _wait_for_run(origin: str, event_id: str) -> str:
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:  # the run is created as the event is accepted; read it over HTTP
        runs = httpx.get(f"{origin}/v1/events/{event_id}/runs", timeout=10).json()["data"]
        if runs:
            return str(runs[0]["run_id"])
        assert time.monotonic() < deadline, "no run for the event"
        time.sleep(0.05)
