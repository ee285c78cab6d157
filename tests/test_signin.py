"""Sign-in and tokens: failures slowed down per address (without locking out anyone else),
sign-out ends the session on the server, a long admin token, and a policy on every HTML page."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import AsyncIterator

import pytest
from pydantic import ValidationError
from yarl import URL

from conftest import ADMIN_TOKEN, Database, Server
from pushgate.api.docs import docs_page
from pushgate.clock import ManualClock
from pushgate.errors import RateLimited
from pushgate.settings import Settings
from pushgate.throttle import FREE_FAILURES, MAX_DELAY_MS, Throttle
from webpage import WebClient

ATTACKER = "203.0.113.7"
ADMIN = "198.51.100.20"


def test_failures_past_the_free_ones_make_the_address_wait_longer_each_time() -> None:
    clock = ManualClock()
    throttle = Throttle(clock)
    for _ in range(FREE_FAILURES):
        throttle.check(ATTACKER)
        throttle.failed(ATTACKER)
    waits = []
    for _ in range(9):
        throttle.check(ATTACKER)  # the wait is over: one more try is checked
        throttle.failed(ATTACKER)
        with pytest.raises(RateLimited) as refused:
            throttle.check(ATTACKER)
        waits.append(refused.value.retry_after)
        clock.advance(refused.value.retry_after)
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]  # doubling, at most MAX_DELAY_MS
    assert MAX_DELAY_MS == 60_000


def test_another_address_is_never_slowed_down_and_a_success_clears_the_address() -> None:
    clock = ManualClock()
    throttle = Throttle(clock)
    for _ in range(FREE_FAILURES + 1):
        throttle.failed(ATTACKER)
    with pytest.raises(RateLimited):
        throttle.check(ATTACKER)
    throttle.check(ADMIN)  # the admin elsewhere is not affected
    throttle.check("2001:db8:1:2::1")
    clock.advance(1)
    throttle.succeeded(ATTACKER)  # the right token came from there: start afresh
    for _ in range(FREE_FAILURES):
        throttle.check(ATTACKER)
        throttle.failed(ATTACKER)


def test_ipv6_addresses_are_counted_per_64_and_failures_are_forgotten() -> None:
    clock = ManualClock()
    throttle = Throttle(clock)
    for host in range(FREE_FAILURES + 1):
        throttle.failed(f"2001:db8:1:2::{host + 1}")  # hopping inside one /64
    with pytest.raises(RateLimited):
        throttle.check("2001:db8:1:2::ffff")
    throttle.check("2001:db8:1:3::1")  # the next /64 is someone else
    clock.advance(15 * 60)
    throttle.check("2001:db8:1:2::1")  # quiet for 15 minutes: forgotten


@pytest.fixture
def attacker(server: Server) -> dict[str, str]:
    # uvicorn believes X-Forwarded-For from loopback (a trusted proxy), as behind a real proxy.
    return {"X-Forwarded-For": ATTACKER}


async def test_wrong_api_tokens_are_slowed_down_and_the_admin_elsewhere_is_not(
    server: Server, attacker: dict[str, str]
) -> None:
    url = server.url + "/api/v2/integrations/webhook"
    for _ in range(FREE_FAILURES + 1):
        async with server.session.get(url, headers={"Authorization": "guess", **attacker}) as r:
            assert r.status == 401
    async with server.session.get(url, headers={"Authorization": "guess", **attacker}) as r:
        assert r.status == 429
        assert r.headers["Retry-After"] == "1"
        assert (await r.json())["code"] == "rate_limited"
    # Even the right token is not checked from there during the wait...
    async with server.session.get(url, headers={"Authorization": ADMIN_TOKEN, **attacker}) as r:
        assert r.status == 429
    # ...while the admin from another address gets in at once.
    admin = {"Authorization": ADMIN_TOKEN, "X-Forwarded-For": ADMIN}
    async with server.session.get(url, headers=admin) as r:
        assert r.status == 200
    server.clock.advance(1)
    async with server.session.get(url, headers={"Authorization": ADMIN_TOKEN, **attacker}) as r:
        assert r.status == 200  # the wait is over


@pytest.fixture
async def web(server: Server) -> AsyncIterator[WebClient]:
    client = WebClient(server.url)
    yield client
    await client.close()


async def test_wrong_sign_ins_are_slowed_down_per_address(
    server: Server, web: WebClient, attacker: dict[str, str]
) -> None:
    form = (await web.get("/login")).page
    nonce = form.one("input", name="csrf").attrs["value"]
    guess = {"token": "guess", "csrf": nonce, "next": "/"}
    for _ in range(FREE_FAILURES + 1):
        assert (await web.post("/login", guess, **attacker)).status == 401
    refused = await web.post("/login", guess, **attacker)
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "1"
    assert "Wait 1 seconds" in refused.text
    right = {**guess, "token": ADMIN_TOKEN}
    assert (await web.post("/login", right, **{"X-Forwarded-For": ADMIN})).status == 303


async def test_sign_out_ends_the_session_on_the_server(server: Server, web: WebClient) -> None:
    assert (await web.sign_in(ADMIN_TOKEN)).status == 303
    cookie = web.http.cookie_jar.filter_cookies(URL(web.base_url))["pushgate_session"].value
    page = await web.get("/settings/integrations")
    assert page.status == 200
    assert (await web.post("/logout", {"csrf": page.page.csrf})).status == 303

    copied = WebClient(server.url)  # someone who kept a copy of the cookie
    copied.http.cookie_jar.update_cookies({"pushgate_session": cookie})
    try:
        answer = await copied.get("/settings/integrations")
    finally:
        await copied.close()
    assert answer.status == 303
    assert answer.headers["Location"].startswith("/login")


async def test_the_session_table_holds_no_usable_session_id(
    server: Server, web: WebClient, database: Database
) -> None:
    assert (await web.sign_in(ADMIN_TOKEN)).status == 303
    cookie = web.http.cookie_jar.filter_cookies(URL(web.base_url))["pushgate_session"].value
    data = cookie.partition(".")[0]
    session_id = json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))["sid"]
    stored = await database.stored_bytes()
    assert hashlib.sha256(session_id.encode()).hexdigest().encode() in stored
    assert session_id.encode() not in stored


def test_a_short_admin_token_is_refused_with_its_minimum() -> None:
    with pytest.raises(ValidationError, match="at least 32 characters") as refused:
        Settings(admin_token="a")
    assert "'a'" not in str(refused.value)  # the value is not repeated in the error


HTML_PAGES = [
    "/login",
    "/api/docs",
    "/static/favicon.svg",
    "/settings/integrations",
    "/settings/integrations/nope/000000000000000000000000/activity",  # a problem page (404)
]


@pytest.mark.parametrize("path", HTML_PAGES)
async def test_every_html_answer_carries_a_content_security_policy(
    web: WebClient, path: str
) -> None:
    if path.startswith("/settings"):
        assert (await web.sign_in(ADMIN_TOKEN)).status == 303
    answer = await web.get(path)
    assert answer.status in (200, 404), answer.status
    policy = answer.headers.get("Content-Security-Policy", "")
    assert "default-src" in policy
    assert "frame-ancestors 'none'" in policy
    assert "object-src 'none'" in policy
    assert "'unsafe-inline'" not in policy
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_the_docs_policy_allows_this_origin_only_and_no_inline_script() -> None:
    body, headers = docs_page()
    policy = headers["Content-Security-Policy"]
    assert re.findall(rb"<script>", body) == []  # every script is a file of this origin
    assert "default-src 'none'" in policy
    assert "script-src 'self';" in policy
    assert "style-src 'self';" in policy
    assert "connect-src 'self'" in policy
    assert "unsafe" not in policy
    assert "http" not in policy  # no CDN, no other host
