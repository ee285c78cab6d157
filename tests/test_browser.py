"""The web UI in a real Chromium, driven by Playwright, against a real pushgate on loopback.

The server, a switchable receiver and delivery run on an event loop in a background thread;
the tests drive the browser with Playwright's sync API and wait only through `expect`.
The browser's clock is set a few minutes after the server's, so relative times are known.

Set PUSHGATE_SCREENSHOTS=<dir> to write screenshots of each page (docs/screenshots/).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from conftest import (
    ADMIN_TOKEN,
    Receiver,
    Server,
    assert_described,
    flag_event,
    free_port,
    runtime_of,
    start_server,
)
from pushgate.clock import ManualClock, system_clock
from pushgate.settings import Settings

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIME_ZONE = "Asia/Kathmandu"  # UTC+05:45: a wrong offset cannot pass by accident
MINUTE_MS = 60_000
SCREENSHOTS = os.environ.get("PUSHGATE_SCREENSHOTS")
T = TypeVar("T")


class LoopThread:
    """An asyncio loop in a background thread; `run` waits for a coroutine's result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, make: Callable[[], Awaitable[T]]) -> T:
        async def wrapped() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout=30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: the browser tests must run under CI")
        pytest.skip(f"{CHROMIUM} is missing (install Debian's chromium to run browser tests)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def receiver(loop_thread: LoopThread) -> Iterator[Receiver]:
    """A local receiver (200 by default; set `.default` to make it fail)."""
    recv = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recv.handle)
    runner = web.AppRunner(app, access_log=None)
    port = free_port()

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    loop_thread.run(start)
    recv.url = f"http://127.0.0.1:{port}"
    yield recv
    loop_thread.run(runner.cleanup)


@pytest.fixture
def live(loop_thread: LoopThread, settings: Settings) -> Iterator[Server]:
    """pushgate on loopback with a manual clock at the real time; deliveries are explicit."""
    clock = ManualClock(start_ms=system_clock())

    async def start() -> tuple[Any, asyncio.Task[None], Server]:
        uv, task, url = await start_server(settings, clock)
        return uv, task, Server(url, runtime_of(uv), clock, aiohttp.ClientSession())

    uv, task, server = loop_thread.run(start)
    yield server

    async def stop() -> None:
        await server.session.close()
        uv.should_exit = True
        await task

    loop_thread.run(stop)
    assert_described(uv)


def new_context(browser: Browser, server: Server, *, width: int = 1280) -> BrowserContext:
    """A fresh browser profile in TIME_ZONE whose clock runs 5 minutes ahead of the server's."""
    context = browser.new_context(
        base_url=server.url,
        viewport={"width": width, "height": 900},
        timezone_id=TIME_ZONE,
        locale="en-US",
    )
    context.clock.install(time=server.clock() / 1000 + 5 * 60)
    return context


def shot(page: Page, name: str, **options: Any) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        path = str(Path(SCREENSHOTS) / f"{name}.png")
        page.screenshot(path=path, animations="disabled", caret="hide", **options)


def sign_in(page: Page, token: str = ADMIN_TOKEN) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    page.get_by_label("Access token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/settings/integrations$"))


def local_time(ms: int) -> str:
    """What the page must show for `ms` in TIME_ZONE."""
    when = datetime.fromtimestamp(ms / 1000, ZoneInfo(TIME_ZONE))
    offset = when.utcoffset()
    assert offset is not None
    hours, minutes = divmod(int(offset.total_seconds()) // 60, 60)
    return when.strftime("%Y-%m-%d %H:%M:%S") + f" GMT+{hours}:{minutes:02d}"


def card(page: Page, name: str) -> Any:
    return page.locator("li.integration").filter(has=page.get_by_role("heading", name=name))


def test_a_configuration_from_sign_in_to_delete(
    browser: Browser, live: Server, receiver: Receiver, loop_thread: LoopThread
) -> None:
    context = new_context(browser, live)
    page = context.new_page()
    page.goto("/login")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shot(page, "login")
    sign_in(page)

    # The gear opens Organization settings; Integrations is a page there.
    page.get_by_role("link", name="Organization settings").click()
    expect(page.get_by_role("heading", name="Organization settings", level=1)).to_be_visible()
    page.get_by_role("navigation", name="Settings sections").get_by_role(
        "link", name="Integrations"
    ).click()
    expect(page.get_by_role("heading", name="Integrations", level=1)).to_be_visible()
    webhook = card(page, "Webhook")
    expect(webhook.get_by_text("Send every matching event")).to_be_visible()

    # Add a webhook configuration; Validate Connection with the unsaved values.
    webhook.get_by_role("button", name="Add integration").click()
    panel = page.get_by_role("dialog", name="Add configuration")
    expect(panel).to_be_visible()
    expect(panel.get_by_label("Resources", exact=True)).to_have_value(
        "proj/*:env/production:flag/*"
    )
    panel.get_by_label("Name").fill("Deploys to the hook")
    panel.get_by_label("Payload URL").fill(receiver.url + "/hook")
    panel.get_by_role("button", name="Validate Connection").click()
    result = panel.locator("#validation-result")
    expect(result).to_contain_text("Connection validated: 200 OK")
    assert receiver.requests[-1].path == "/hook"

    receiver.default = (503, '{"error": "down for maintenance"}', {})
    panel.get_by_role("button", name="Validate Connection").click()
    expect(result).to_contain_text("Validation failed: HTTP 503 Service Unavailable")
    expect(result).to_contain_text('"error": "down for maintenance"')
    expect(result).to_contain_text("retried on their schedule")
    shot(page, "edit-panel-validation")
    receiver.default = (200, "ok", {})

    panel.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Saved “Deploys to the hook”.")

    # Events: one delivered, then one refused with 503 a minute later.
    def send(event_id: str) -> Callable[[], Awaitable[int]]:
        async def go() -> int:
            await live.call("POST", "/api/v2/events", flag_event(event_id))
            return await live.deliver()

        return go

    assert loop_thread.run(send("e1")) == 1
    succeeded_at = live.clock()
    live.clock.advance(60)
    receiver.default = (503, '{"error": "down for maintenance"}', {})
    assert loop_thread.run(send("e2")) == 1
    failed_at = live.clock()
    receiver.default = (200, "ok", {})

    page.goto("/settings/integrations")
    webhook = card(page, "Webhook")
    expander = webhook.get_by_role("button", name="Show configurations")
    expect(expander).to_have_attribute("aria-expanded", "false")
    expander.click()
    expect(expander).to_have_attribute("aria-expanded", "true")
    row = webhook.get_by_role("row").filter(has_text="Deploys to the hook")
    expect(row.locator("[data-column=success-count]")).to_have_text("1")
    expect(row.locator("[data-column=error-count]")).to_have_text("1")
    expect(row.locator("[data-column=last-success]")).to_have_text("5 minutes ago")
    expect(row.locator("[data-column=last-error] time")).to_have_text("4 minutes ago")
    expect(row.locator("[data-column=last-success] time")).to_have_attribute(
        "title", local_time(succeeded_at)
    )
    shot(page, "integrations-status-table", full_page=True)

    # Relative times move on without a reload.
    page.clock.fast_forward("05:00")
    expect(row.locator("[data-column=last-success]")).to_have_text("10 minutes ago")

    # Most recent error opens the Activity page's failures: status code, body, local time.
    row.get_by_role("link", name=re.compile("ago")).click()
    expect(page.get_by_role("heading", name="Activity")).to_be_visible()
    expect(page.get_by_label("Outcome")).to_have_value("failure")
    entry = page.get_by_role("row").nth(1)
    expect(entry.get_by_role("cell").nth(0)).to_contain_text(local_time(failed_at))
    expect(entry.get_by_role("cell").nth(1)).to_contain_text("503")
    expect(entry.get_by_role("cell").nth(2)).to_contain_text('"error": "down for maintenance"')

    # Edit through the pencil.
    page.get_by_role("navigation", name="Breadcrumb").get_by_role(
        "link", name="Integrations"
    ).click()
    row = card(page, "Webhook").get_by_role("row").filter(has_text="Deploys to the hook")
    row.get_by_role("link", name="Edit").click()
    panel = page.get_by_role("dialog", name="Edit configuration")
    expect(panel.get_by_label("Name")).to_have_value("Deploys to the hook")
    panel.get_by_label("Name").fill("Renamed hook")
    panel.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Saved “Renamed hook”.")

    # Edit through the three-dot menu; Escape closes the panel.
    row = card(page, "Webhook").get_by_role("row").filter(has_text="Renamed hook")
    row.get_by_role("button", name="More actions").click()
    menu = page.get_by_role("menu")
    expect(menu.get_by_role("menuitem", name="Edit integration configuration")).to_be_focused()
    menu.get_by_role("menuitem", name="Edit integration configuration").click()
    panel = page.get_by_role("dialog", name="Edit configuration")
    expect(panel.get_by_label("Name")).to_have_value("Renamed hook")
    # A secret URL: the panel shows its host and masks the rest (it is kept when saved).
    expect(panel.get_by_label("Payload URL")).to_have_value(receiver.url + "/********")
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()

    # Delete, with confirmation (Cancel first).
    row = card(page, "Webhook").get_by_role("row").filter(has_text="Renamed hook")
    row.get_by_role("button", name="More actions").click()
    page.get_by_role("menuitem", name="Delete").click()
    confirm = page.get_by_role("dialog", name="Delete “Renamed hook”?")
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_be_hidden()
    expect(row).to_be_visible()
    row.get_by_role("button", name="More actions").click()
    page.get_by_role("menuitem", name="Delete").click()
    confirm.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status")).to_have_text("Deleted “Renamed hook”.")
    expect(card(page, "Webhook").get_by_text("No Webhook configuration yet")).to_be_visible()
    context.close()


def test_the_old_error_log_link_lands_on_failures_with_folded_bodies_and_transport_errors(
    browser: Browser, live: Server, receiver: Receiver, loop_thread: LoopThread
) -> None:
    body = {"name": "Audit feed", "on": True, "config": {"url": receiver.url}}
    _, created = loop_thread.run(lambda: live.call("POST", "/api/v2/integrations/webhook", body))
    problems = [{"field": f"tags[{i}]", "problem": "must be lowercase"} for i in range(14)]
    long_body = json.dumps({"error": "validation failed", "problems": problems})
    receiver.answer(422, long_body)
    receiver.answer(503, "<html><body>Service temporarily unavailable</body></html>")

    async def send(event_id: str) -> None:
        await live.call("POST", "/api/v2/events", flag_event(event_id))
        await live.deliver()
        live.clock.advance(1)  # less than the first retry delay: no retry runs in between

    for event_id in ("e1", "e2"):
        loop_thread.run(lambda e=event_id: send(e))
    closed = [{"op": "replace", "path": "/config/url", "value": f"http://127.0.0.1:{free_port()}/"}]
    path = f"/api/v2/integrations/webhook/{created['_id']}"
    loop_thread.run(lambda: live.call("PATCH", path, closed))
    loop_thread.run(lambda: send("e3"))

    context = new_context(browser, live)
    page = context.new_page()
    sign_in(page)
    page.goto(f"/settings/integrations/webhook/{created['_id']}/errors")
    expect(page).to_have_url(re.compile(r"/activity\?outcome=failure$"))
    expect(page.get_by_label("Outcome")).to_have_value("failure")
    rows = page.get_by_role("row")
    expect(rows).to_have_count(4)
    newest, middle, oldest = rows.nth(1), rows.nth(2), rows.nth(3)
    expect(newest.get_by_role("cell").nth(1)).to_contain_text("No HTTP response")
    expect(newest.get_by_role("cell").nth(2)).to_contain_text("Cannot connect")
    expect(middle.get_by_role("cell").nth(1)).to_contain_text("503 Service Unavailable")
    expect(oldest.get_by_role("cell").nth(1)).to_contain_text("422 Unprocessable")
    expect(oldest.get_by_role("cell").nth(1)).to_contain_text("Given up (not retried)")
    expect(middle.get_by_role("cell").nth(1)).to_contain_text("Will retry at")
    oldest.get_by_text("Request and response").click()
    answer = oldest.locator(".exchange-response .fold")
    full = answer.locator("details pre")
    expect(full).to_be_hidden()
    answer.get_by_text("Show full body").click()
    expect(full).to_contain_text('"field": "tags[13]"')
    expect(answer.locator(".body-preview")).to_be_hidden()
    shot(page, "activity-failures", full_page=True)
    context.close()


AUTHORIZATION = "Bearer browser-activity-credential-58x1"


def test_the_activity_page_lists_filters_masks_and_resends(
    browser: Browser, live: Server, receiver: Receiver, loop_thread: LoopThread
) -> None:
    config = {"url": receiver.url, "authorization": AUTHORIZATION}
    body = {"name": "Audit feed", "on": True, "config": config}
    _, created = loop_thread.run(lambda: live.call("POST", "/api/v2/integrations/webhook", body))
    answers = {"ok": 200, "slow": 503, "bad": 422}
    # The receiver echoes the credential it was sent: the page must not show it.
    receiver.responder = lambda r: (
        answers[r.json()["_id"]],
        f"token {r.headers['Authorization']}",
        {"X-Echo": AUTHORIZATION},
    )

    async def send(event_id: str) -> None:
        await live.call("POST", "/api/v2/events", flag_event(event_id))
        await live.deliver()
        live.clock.advance(1)

    for event_id in answers:
        loop_thread.run(lambda e=event_id: send(e))

    context = new_context(browser, live)
    page = context.new_page()
    sign_in(page)
    page.goto(f"/settings/integrations/webhook/{created['_id']}/activity")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(3)
    bad, slow, ok = rows.nth(0), rows.nth(1), rows.nth(2)
    expect(ok).to_contain_text("Delivered")
    expect(ok).to_contain_text("200 OK")
    expect(slow).to_contain_text("Will retry at")
    expect(bad).to_contain_text("Given up (not retried)")
    expect(page.get_by_role("columnheader").first).to_have_text("Attempted at")

    # The charts add up to the status counters of this scripted run (1 success, 2 errors).
    expect(page.locator(".lede")).to_contain_text("1 success and 2 errors in total")
    for chart in page.locator("svg.chart").all():
        bars = chart.locator("g").all()
        assert sum(int(b.get_attribute("data-successes") or 0) for b in bars) == 1
        assert sum(int(b.get_attribute("data-errors") or 0) for b in bars) == 2
    expect(page.locator(".chart-sums").first).to_contain_text("1 success · 2 errors · p50")

    bad.get_by_text("Request and response").click()
    expect(bad.locator(".exchange")).to_contain_text("Authorization")
    expect(bad.locator(".exchange")).to_contain_text("token ********")
    assert "browser-activity-credential" not in page.content()
    shot(page, "activity", full_page=True)

    page.get_by_label("Outcome").select_option("failure")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(2)
    page.get_by_label("Status code").fill("422")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("bad")
    page.get_by_role("link", name="Clear filters").click()
    page.get_by_label("Event id").fill("ok")
    page.get_by_label("Time range").select_option("1h")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)

    rows.first.get_by_text("Request and response").click()
    rows.first.get_by_role("button", name="Resend this event").click()
    confirm = page.get_by_role("dialog")
    expect(confirm.get_by_role("heading")).to_have_text("Resend event ok?")
    expect(confirm).to_contain_text('"_id": "ok"')  # what will be sent
    confirm.get_by_role("button", name="Resend").click()
    expect(page.get_by_role("status")).to_have_text("Queued event ok to send again.")
    loop_thread.run(live.deliver)
    page.reload()
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Delivered")
    assert [r.json()["_id"] for r in receiver.requests].count("ok") == 2
    context.close()


def test_field_errors_keep_what_was_typed_and_sign_out(browser: Browser, live: Server) -> None:
    context = new_context(browser, live)
    page = context.new_page()
    sign_in(page)
    card(page, "Webhook").get_by_role("button", name="Add integration").click()
    panel = page.get_by_role("dialog", name="Add configuration")
    panel.get_by_label("Name").fill("Typed name")
    panel.get_by_label("Payload URL").fill("ftp://example.com")
    panel.get_by_label("Tags").fill("a, b")
    panel.get_by_role("button", name="Add statement").click()
    panel.get_by_label("Resources", exact=True).nth(1).fill("not a specifier")
    panel.get_by_role("button", name="Save").click()

    panel = page.get_by_role("dialog", name="Add configuration")
    url = panel.get_by_label("Payload URL")
    expect(url).to_have_attribute("aria-invalid", "true")
    expect(url).to_be_focused()
    expect(panel.locator('[data-error-for="config.url"]')).to_have_text(
        "Must be an absolute http:// or https:// URL."
    )
    expect(panel.locator('[data-error-for="statements[1].resources"]')).to_contain_text(
        "not a valid resource specifier"
    )
    expect(panel.get_by_label("Name")).to_have_value("Typed name")
    expect(panel.get_by_label("Tags")).to_have_value("a, b")
    expect(panel.get_by_label("Resources", exact=True).nth(1)).to_have_value("not a specifier")

    # Validate Connection marks the field without saving.
    url.fill("")
    panel.get_by_role("button", name="Validate Connection").click()
    expect(panel.locator('[data-error-for="config.url"]')).to_have_text("Required.")
    expect(panel.locator("#validation-result")).to_contain_text("fix the marked fields")

    page.goto("/settings/integrations")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You signed out.")
    page.goto("/settings/integrations")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    context.close()


def test_keyboard_reaches_the_status_table_and_its_menu(
    browser: Browser, live: Server, receiver: Receiver, loop_thread: LoopThread
) -> None:
    body = {"name": "kb", "on": True, "config": {"url": receiver.url}}
    loop_thread.run(lambda: live.call("POST", "/api/v2/integrations/webhook", body))
    context = new_context(browser, live)
    page = context.new_page()
    sign_in(page)
    expander = card(page, "Webhook").get_by_role("button", name="Show configurations")
    expander.focus()
    page.keyboard.press("Enter")
    expect(expander).to_have_attribute("aria-expanded", "true")
    outline = expander.evaluate("el => getComputedStyle(el).outlineStyle")
    assert outline == "solid"  # visible focus

    page.keyboard.press("Tab")
    edit = card(page, "Webhook").get_by_role("link", name="Edit")
    expect(edit).to_be_focused()
    page.keyboard.press("Tab")
    more = card(page, "Webhook").get_by_role("button", name="More actions")
    expect(more).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("menuitem", name="Edit integration configuration")).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(page.get_by_role("menuitem", name="Open activity")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_role("menu")).to_be_hidden()
    expect(more).to_be_focused()
    context.close()


@pytest.mark.parametrize("width", [1280, 800])
def test_pages_fit_the_width_without_sideways_scrolling(
    browser: Browser, live: Server, receiver: Receiver, loop_thread: LoopThread, width: int
) -> None:
    for name in ("Production changes", "Staging changes with a rather long name"):
        body = {"name": name, "on": True, "tags": ["prod"], "config": {"url": receiver.url}}
        loop_thread.run(lambda b=body: live.call("POST", "/api/v2/integrations/webhook", b))
    context = new_context(browser, live, width=width)
    page = context.new_page()
    sign_in(page)
    page.goto("/settings/integrations?open=webhook")
    expect(page.get_by_role("table")).to_be_visible()
    overflow = "document.documentElement.scrollWidth > window.innerWidth"
    assert page.evaluate(overflow) is False
    table_wrap = page.locator(".table-wrap")
    assert table_wrap.evaluate("el => el.scrollWidth > el.clientWidth") is False
    if width == 800:
        shot(page, "integrations-800", full_page=True)
    card(page, "Webhook").get_by_role("link", name="Edit").first.click()
    expect(page.get_by_role("dialog", name="Edit configuration")).to_be_visible()
    assert page.evaluate(overflow) is False
    if width == 800:
        shot(page, "edit-panel-800")
    context.close()


def test_without_javascript_pages_still_work_and_show_utc(
    browser: Browser, live: Server, receiver: Receiver, loop_thread: LoopThread
) -> None:
    context = browser.new_context(base_url=live.url, java_script_enabled=False)
    page = context.new_page()
    sign_in(page)
    card(page, "Webhook").get_by_role("button", name="Add integration").click()
    page.get_by_label("Name").fill("Plain HTML")
    page.get_by_label("Payload URL").fill(receiver.url)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Saved “Plain HTML”.")

    loop_thread.run(lambda: live.call("POST", "/api/v2/events", flag_event("e1")))
    loop_thread.run(live.deliver)
    page.goto("/settings/integrations")
    card(page, "Webhook").get_by_role("button", name="Show configurations").click()
    cell = card(page, "Webhook").locator("[data-column=last-success]")
    expect(cell).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$"))
    context.close()


# Records every Content-Security-Policy violation the page reports (the page cannot stop it:
# Playwright adds it outside the page's policy).
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


def test_the_api_docs_work_offline_authorize_and_call_an_endpoint(
    browser: Browser, live: Server, loop_thread: LoopThread
) -> None:
    context = browser.new_context(base_url=live.url, viewport={"width": 1280, "height": 900})
    elsewhere: list[str] = []
    # Nothing may leave the machine: any request not to this server is recorded and refused.
    context.route(
        re.compile(r"^(?!" + re.escape(live.url) + r"/)"),
        lambda route: (elsewhere.append(route.request.url), route.abort()),
    )
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    loaded: list[str] = []
    page.on("request", lambda request: loaded.append(request.url))
    page.goto("/api/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("pushgate")
    expect(page.locator(".opblock-tag-section")).to_have_count(6)  # a group per tag

    # Authorize with a token: every call from the page carries it.
    page.get_by_role("button", name="Authorize").first.click()
    dialog = page.locator(".dialog-ux")
    dialog.locator("input").fill(ADMIN_TOKEN)
    dialog.get_by_role("button", name="Apply credentials").click()
    expect(dialog.get_by_role("button", name="Remove authorization")).to_be_visible()
    dialog.get_by_role("button", name="Close", exact=True).click()

    # "Try it out" on POST /api/v2/events sends its example body, which is accepted.
    operation = page.locator("#operations-Events-postEvents")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    expect(operation.locator("textarea.body-param__text")).to_contain_text("updateOn")
    operation.get_by_role("button", name="Execute").click()
    answer = operation.locator(".live-responses-table .response")
    expect(answer.locator(".response-col_status").first).to_have_text("202")
    expect(answer.locator(".response-col_description")).to_contain_text('"accepted"')
    shot(page, "api-docs")

    status, listed = loop_thread.run(lambda: live.call("GET", "/api/v2/integration-manifests"))
    assert status == 200
    assert listed["items"]
    assert elsewhere == []
    assert loaded
    assert all(url.startswith((live.url + "/", "data:")) for url in loaded)
    assert page.evaluate("window.__violations") == []
    context.close()


def test_the_sources_page_shows_what_each_source_received(
    browser: Browser, live: Server, loop_thread: LoopThread
) -> None:
    secret = "ld-webhook-secret-0123456789"
    body = {"name": "LaunchDarkly production", "kind": "launchdarkly-webhook", "secret": secret}
    _, source = loop_thread.run(lambda: live.call("POST", "/api/v2/sources", body))
    event = json.dumps(flag_event("ld-1")).encode()
    signature = hmac.new(secret.encode(), event, hashlib.sha256).hexdigest()

    async def post() -> int:
        headers = {"X-LD-Signature": signature, "Content-Type": "application/json"}
        async with live.session.post(source["ingestUrl"], data=event, headers=headers) as answer:
            return answer.status

    assert loop_thread.run(post) == 202
    context = new_context(browser, live, width=800)
    page = context.new_page()
    sign_in(page)
    page.get_by_role("link", name="Organization settings").click()
    page.get_by_role("navigation", name="Settings sections").get_by_role(
        "link", name="Sources"
    ).click()
    expect(page.get_by_role("heading", name="Sources", level=1)).to_be_visible()
    row = page.locator(f"#source-{source['_id']}")
    expect(row.locator("[data-column=events-received]")).to_have_text("1")
    expect(row.locator("[data-column=last-event] time")).to_have_text("5 minutes ago")
    expect(row.locator("[data-column=last-event-id]")).to_have_text("ld-1")
    expect(row.locator("[data-column=ingest-url]")).to_have_text(source["ingestUrl"])
    assert page.evaluate("document.documentElement.scrollWidth > window.innerWidth") is False
    shot(page, "sources-800", full_page=True)
    context.close()


def test_the_tokens_page_creates_shows_the_value_once_and_revokes(
    browser: Browser, live: Server, loop_thread: LoopThread
) -> None:
    context = new_context(browser, live)
    page = context.new_page()
    sign_in(page)
    page.goto("/settings")
    page.get_by_role("link", name="Tokens").click()
    expect(page.get_by_role("heading", name="Tokens")).to_be_visible()
    page.get_by_label("Name").fill("ci-deploys")
    page.get_by_label("Role").select_option("writer")
    page.get_by_role("button", name="Create token").click()
    value = page.locator(".token-value").inner_text()
    expect(page.get_by_role("row", name=re.compile("ci-deploys"))).to_contain_text("Writer")
    status, _ = loop_thread.run(lambda: live.call("GET", "/api/v2/tokens", token=value))
    assert status == 403  # a real token (a writer may not list tokens), not a made-up string
    shot(page, "tokens", full_page=True)

    page.reload()  # shown once: a reload neither shows it again nor creates another
    expect(page.locator(".token-value")).to_have_count(0)
    expect(page.get_by_role("row", name=re.compile("ci-deploys"))).to_have_count(1)

    page.get_by_role("row", name=re.compile("ci-deploys")).get_by_role(
        "button", name="Revoke"
    ).click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_have_text("Revoked “ci-deploys”.")
    expect(page.get_by_role("row", name=re.compile("ci-deploys"))).to_have_count(0)
    status, _ = loop_thread.run(
        lambda: live.call("GET", "/api/v2/integrations/webhook", token=value)
    )
    assert status == 401
    context.close()
