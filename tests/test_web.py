"""The web UI over HTTP: sessions, CSRF, roles, forms and field errors, validation, error log."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from yarl import URL

from conftest import ADMIN_TOKEN, Receiver, Server, flag_event, free_port
from pushgate.configurations import open_config
from pushgate.domain import DeliveryState, Role
from pushgate.web.session import SESSION_TTL_MS
from webpage import Answer, WebClient

INTEGRATIONS = "/settings/integrations"
WEBHOOK = INTEGRATIONS + "/webhook"


@pytest.fixture
async def web(server: Server) -> AsyncIterator[WebClient]:
    client = WebClient(server.url)
    yield client
    await client.close()


@pytest.fixture
async def admin(web: WebClient) -> WebClient:
    assert (await web.sign_in(ADMIN_TOKEN)).status == 303
    return web


async def token(server: Server, role: Role) -> tuple[str, str]:
    """A new token of `role`: (id, value)."""
    row, value = await server.runtime.store.tokens.create(
        name=f"a {role.value}", role=role, now=server.clock()
    )
    return row.id, value


def webhook_form(csrf: str, url: str, **overrides: str) -> dict[str, str]:
    form = {
        "csrf": csrf,
        "name": "Deploy hook",
        "on": "true",
        "tags": "team-a, prod",
        "config.url": url,
        "config.secret": "",
        "statements[0].effect": "allow",
        "statements[0].resourcesKind": "resources",
        "statements[0].resources": "proj/*:env/production:flag/*",
        "statements[0].actionsKind": "actions",
        "statements[0].actions": "*",
    }
    form.update(overrides)
    return form


async def make_webhook(server: Server, url: str, **body: Any) -> dict[str, Any]:
    payload = {"name": "hook", "on": True, "config": {"url": url}, **body}
    status, created = await server.call("POST", "/api/v2/integrations/webhook", payload)
    assert status == 201, created
    return created


# --- signing in and out ----------------------------------------------------------------------


async def test_login_page_asks_for_an_access_token(web: WebClient) -> None:
    page = (await web.get("/login")).page
    label = page.one("label", for_="token")
    assert label.text == "Access token"
    assert page.one("input", id="token").attrs["type"] == "password"


async def test_pages_send_browsers_without_a_session_to_login(web: WebClient) -> None:
    answer = await web.get(INTEGRATIONS + "?open=webhook")
    assert answer.status == 303
    assert answer.location == "/login?next=/settings/integrations%3Fopen%3Dwebhook"


async def test_sign_in_sets_an_httponly_samesite_session_cookie(web: WebClient) -> None:
    answer = await web.sign_in(ADMIN_TOKEN)
    assert answer.status == 303
    assert answer.location == "/"
    cookie = next(c for c in answer.headers.getall("Set-Cookie") if "pushgate_session=" in c)
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http on loopback
    assert ADMIN_TOKEN not in cookie
    assert (await web.get(INTEGRATIONS)).status == 200


async def test_the_cookies_are_secure_when_served_over_https(web: WebClient) -> None:
    # uvicorn takes the scheme from X-Forwarded-Proto when the proxy is on loopback. The
    # client talks plain http, so it would not send Secure cookies back: the test does.
    https = {"X-Forwarded-Proto": "https"}
    shown = await web.get("/login", **https)
    login_cookie = shown.headers["Set-Cookie"]
    assert "Secure" in login_cookie
    nonce = shown.page.one("input", name="csrf").attrs["value"]
    form = {"token": ADMIN_TOKEN, "csrf": nonce, "next": "/"}
    answer = await web.post("/login", form, Cookie=login_cookie.split(";")[0], **https)
    assert answer.status == 303
    cookie = next(c for c in answer.headers.getall("Set-Cookie") if "pushgate_session=" in c)
    assert "Secure" in cookie


async def test_sign_in_with_an_unknown_token_is_refused(web: WebClient) -> None:
    answer = await web.sign_in("pgt-not-a-token")
    assert answer.status == 401
    assert "not valid" in answer.page.one("div", role="alert").text
    assert (await web.get(INTEGRATIONS)).status == 303


async def test_sign_in_without_the_forms_nonce_is_refused(web: WebClient) -> None:
    await web.get("/login")
    answer = await web.post("/login", {"token": ADMIN_TOKEN, "csrf": "forged", "next": "/"})
    assert answer.status == 403
    assert (await web.get(INTEGRATIONS)).status == 303


async def test_sign_in_goes_back_only_to_local_paths(web: WebClient) -> None:
    nonce = (await web.get("/login")).page.one("input", name="csrf").attrs["value"]
    form = {"token": ADMIN_TOKEN, "csrf": nonce, "next": "//evil.example/x"}
    assert (await web.post("/login", form)).location == "/"


async def test_sign_out_ends_the_session(admin: WebClient) -> None:
    csrf = await admin.csrf()
    answer = await admin.post("/logout", {"csrf": csrf})
    assert answer.status == 303
    assert answer.location == "/login?signed_out=true"
    assert (await admin.get(INTEGRATIONS)).status == 303
    assert "You signed out." in (await admin.get("/login?signed_out=true")).text


async def test_sign_out_without_the_csrf_token_is_refused(admin: WebClient) -> None:
    assert (await admin.post("/logout", {"csrf": "wrong"})).status == 403
    assert (await admin.get(INTEGRATIONS)).status == 200


async def test_a_tampered_session_cookie_is_ignored(server: Server, admin: WebClient) -> None:
    cookie = next(c for c in admin.http.cookie_jar if c.key == "pushgate_session")
    payload, _, mac = cookie.value.partition(".")
    forged = payload + "." + ("A" if mac[0] != "A" else "B") + mac[1:]
    admin.http.cookie_jar.update_cookies({"pushgate_session": forged}, URL(server.url))
    assert (await admin.get(INTEGRATIONS)).status == 303


async def test_a_session_expires(server: Server, admin: WebClient) -> None:
    server.clock.advance(SESSION_TTL_MS / 1000 - 1)
    assert (await admin.get(INTEGRATIONS)).status == 200
    server.clock.advance(1)
    assert (await admin.get(INTEGRATIONS)).status == 303


async def test_revoking_a_token_ends_its_sessions(server: Server, web: WebClient) -> None:
    token_id, value = await token(server, Role.WRITER)
    assert (await web.sign_in(value)).status == 303
    assert (await web.get(INTEGRATIONS)).status == 200
    await server.runtime.store.tokens.revoke(token_id)
    assert (await web.get(INTEGRATIONS)).status == 303


async def test_the_script_gets_json_401_without_a_session(web: WebClient) -> None:
    answer = await web.post(WEBHOOK + "/validate", {}, Accept="application/json")
    assert answer.status == 401
    assert '"code":"unauthorized"' in answer.text


async def test_pages_carry_security_headers(admin: WebClient) -> None:
    answer = await admin.get(INTEGRATIONS)
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["Cache-Control"] == "no-store"


# --- CSRF and roles ----------------------------------------------------------------------------


async def test_saving_without_the_csrf_token_is_refused(
    server: Server, admin: WebClient, receiver: Receiver
) -> None:
    answer = await admin.post(WEBHOOK + "/new", webhook_form("forged", receiver.url))
    assert answer.status == 403
    assert "out of date" in answer.text
    assert await server.runtime.store.configurations.all() == []


async def test_validating_with_a_wrong_csrf_header_is_refused(
    admin: WebClient, receiver: Receiver
) -> None:
    form = webhook_form("", receiver.url)
    answer = await admin.post(
        WEBHOOK + "/validate", form, Accept="application/json", **{"X-CSRF-Token": "forged"}
    )
    assert answer.status == 403
    assert receiver.requests == []


async def test_a_reader_sees_everything_but_cannot_change_anything(
    server: Server, web: WebClient, receiver: Receiver
) -> None:
    created = await make_webhook(server, receiver.url)
    _, value = await token(server, Role.READER)
    await web.sign_in(value)
    page = (await web.get(INTEGRATIONS + "?open=webhook")).page
    assert page.find("button", type="submit", class_="button button-secondary") == []
    assert "hook" in page.one("tr", id=f"configuration-{created['_id']}").text
    edit = (await web.get(f"{WEBHOOK}/{created['_id']}/edit")).page
    assert "disabled" in edit.one("fieldset", class_="plain").attrs
    assert edit.find("button", type="submit", class_="button button-primary") == []

    csrf = page.csrf
    base = f"{WEBHOOK}/{created['_id']}"
    for path in (WEBHOOK + "/new", base + "/edit", base + "/delete", base + "/validate"):
        answer = await web.post(path, webhook_form(csrf, receiver.url))
        assert answer.status == 403, path
        assert "reader token" in answer.text
    assert len(await server.runtime.store.configurations.all()) == 1
    assert receiver.requests == []


# --- adding, editing, deleting -----------------------------------------------------------------


async def test_adding_a_configuration_saves_it_and_shows_it(
    server: Server, admin: WebClient, receiver: Receiver
) -> None:
    answer = await admin.post(WEBHOOK + "/new", webhook_form(await admin.csrf(), receiver.url))
    assert answer.status == 303
    _, listing = await server.call("GET", "/api/v2/integrations/webhook")
    [item] = listing["items"]
    assert item["name"] == "Deploy hook"
    assert item["on"] is True
    assert item["tags"] == ["team-a", "prod"]
    assert item["config"] == {"url": receiver.url + "/********"}  # a secret URL: only the host
    assert item["statements"] == [
        {"effect": "allow", "resources": ["proj/*:env/production:flag/*"], "actions": ["*"]}
    ]
    assert (
        answer.location
        == f"{INTEGRATIONS}?open=webhook&saved={item['_id']}#configuration-{item['_id']}"
    )
    page = (await admin.get(answer.location)).page
    assert page.one("div", role="status").text == "Saved “Deploy hook”."


async def test_the_add_panel_prefills_the_default_policy(admin: WebClient) -> None:
    page = (await admin.get(WEBHOOK + "/new")).page
    assert page.one("h2", id="panel-title").text == "Add configuration"
    assert page.value_of("statements[0].resources") == "proj/*:env/production:flag/*"
    assert page.value_of("statements[0].actions") == "*"
    assert page.one("label", for_="f-config-url").text == "Payload URL*"


async def test_field_errors_are_shown_beside_their_fields_and_nothing_typed_is_lost(
    server: Server, admin: WebClient
) -> None:
    form = webhook_form(
        await admin.csrf(),
        "ftp://nowhere",
        **{"statements[0].resources": "proj/*:env/production:flag/*\nnot a specifier"},
    )
    answer = await admin.post(WEBHOOK + "/new", form)
    assert answer.status == 400
    page = answer.page
    assert page.error_for("config.url") == "Must be an absolute http:// or https:// URL."
    assert page.one("input", name="config.url").attrs["aria-invalid"] == "true"
    assert "not a valid resource specifier" in page.error_for("statements[0].resources")
    assert page.error_for("name") == ""
    assert page.value_of("name") == "Deploy hook"
    assert page.value_of("tags") == "team-a, prod"
    assert page.value_of("config.url") == "ftp://nowhere"
    assert page.value_of("statements[0].resources").endswith("\nnot a specifier")
    assert await server.runtime.store.configurations.all() == []


async def test_a_missing_name_is_shown_beside_the_name(
    admin: WebClient, receiver: Receiver
) -> None:
    answer = await admin.post(
        WEBHOOK + "/new", webhook_form(await admin.csrf(), receiver.url, name=" ")
    )
    assert answer.status == 400
    assert answer.page.error_for("name") == "Must be a non-empty string."
    assert answer.page.value_of("config.url") == receiver.url


async def test_editing_keeps_a_masked_secret_and_replaces_a_retyped_one(
    server: Server, admin: WebClient, receiver: Receiver
) -> None:
    created = await make_webhook(
        server, receiver.url, config={"url": receiver.url, "secret": "s1-secret"}
    )
    edit_url = f"{WEBHOOK}/{created['_id']}/edit"
    page = (await admin.get(edit_url)).page
    assert page.one("h2", id="panel-title").text == "Edit configuration"
    assert page.value_of("config.secret") == "********"
    assert "s1-secret" not in page.html
    form = webhook_form(page.csrf, receiver.url, name="renamed", **{"config.secret": "********"})
    form["version"] = page.value_of("version")
    assert (await admin.post(edit_url, form)).status == 303
    row = await server.runtime.store.configurations.get("webhook", created["_id"])
    assert row.name == "renamed"
    assert open_config(server.runtime.services, row).secret.get_secret_value() == "s1-secret"

    form.update({"config.secret": "s2-secret", "version": str(row.version)})
    assert (await admin.post(edit_url, form)).status == 303
    row = await server.runtime.store.configurations.get("webhook", created["_id"])
    assert open_config(server.runtime.services, row).secret.get_secret_value() == "s2-secret"


async def test_saving_over_a_change_made_since_opening_asks_first(
    server: Server, admin: WebClient, receiver: Receiver
) -> None:
    created = await make_webhook(server, receiver.url)
    edit_url = f"{WEBHOOK}/{created['_id']}/edit"
    page = (await admin.get(edit_url)).page
    patch = [{"op": "replace", "path": "/name", "value": "theirs"}]
    await server.call("PATCH", f"/api/v2/integrations/webhook/{created['_id']}", patch)
    form = webhook_form(page.csrf, receiver.url, name="mine", version=page.value_of("version"))
    answer = await admin.post(edit_url, form)
    assert answer.status == 409
    assert "Someone else saved" in answer.page.one("div", id="form-problems").text
    assert answer.page.value_of("name") == "mine"
    form["version"] = answer.page.value_of("version")
    assert (await admin.post(edit_url, form)).status == 303
    assert (await server.runtime.store.configurations.get("webhook", created["_id"])).name == "mine"


async def test_deleting_removes_the_configuration(
    server: Server, admin: WebClient, receiver: Receiver
) -> None:
    created = await make_webhook(server, receiver.url)
    answer = await admin.post(f"{WEBHOOK}/{created['_id']}/delete", {"csrf": await admin.csrf()})
    assert answer.status == 303
    assert answer.location == f"{INTEGRATIONS}?open=webhook&deleted=hook#integration-webhook"
    assert await server.runtime.store.configurations.all() == []


async def test_an_unknown_configuration_is_a_404_page(admin: WebClient) -> None:
    answer = await admin.get(f"{WEBHOOK}/{'0' * 24}/edit")
    assert answer.status == 404
    assert answer.page.one("h1").text == "Not found"
    assert (await admin.get(INTEGRATIONS + "/nope/new")).status == 404


# --- Validate Connection -----------------------------------------------------------------------


async def validate(client: WebClient, path: str, form: dict[str, str]) -> tuple[int, Any]:
    import json

    answer: Answer = await client.post(
        path, form, Accept="application/json", **{"X-CSRF-Token": form["csrf"]}
    )
    return answer.status, json.loads(answer.text)


async def test_validate_connection_reports_success_then_the_status_code(
    admin: WebClient, receiver: Receiver
) -> None:
    form = webhook_form(await admin.csrf(), receiver.url + "/hook")
    status, report = await validate(admin, WEBHOOK + "/validate", form)
    assert status == 200
    assert report["ok"] is True
    assert (report["statusCode"], report["responseBody"]) == (200, "ok")
    assert 'Connection validated: <span class="status-code">200</span> OK' in report["html"]
    assert receiver.requests[0].path == "/hook"

    receiver.default = (503, '{"error":"maintenance"}', {})
    status, report = await validate(admin, WEBHOOK + "/validate", form)
    assert report["ok"] is False
    assert report["statusCode"] == 503
    assert 'HTTP <span class="status-code">503</span> Service Unavailable' in report["html"]
    assert "&#34;error&#34;: &#34;maintenance&#34;" in report["html"]  # pretty-printed JSON
    assert "retried on their schedule" in report["html"]


async def test_validate_connection_shows_a_transport_error(admin: WebClient) -> None:
    form = webhook_form(await admin.csrf(), f"http://127.0.0.1:{free_port()}/")
    status, report = await validate(admin, WEBHOOK + "/validate", form)
    assert status == 200
    assert "statusCode" not in report
    assert "no HTTP response" in report["html"]
    assert "check the URL" in report["html"]


async def test_validate_connection_with_an_invalid_form_names_the_fields(admin: WebClient) -> None:
    form = webhook_form(await admin.csrf(), "")
    status, report = await validate(admin, WEBHOOK + "/validate", form)
    assert status == 400
    assert report["fieldErrors"] == {"config.url": "Required."}


async def test_validate_connection_of_a_saved_configuration_uses_the_saved_secret(
    server: Server, admin: WebClient, receiver: Receiver
) -> None:
    created = await make_webhook(
        server, receiver.url, config={"url": receiver.url, "secret": "s1-secret"}
    )
    form = webhook_form(
        await admin.csrf(), receiver.url + "/typed", **{"config.secret": "********"}
    )
    status, report = await validate(admin, f"{WEBHOOK}/{created['_id']}/validate", form)
    assert status == 200
    assert report["ok"] is True
    assert receiver.requests[0].path == "/typed"  # the form's values, not the saved URL
    assert "webhook-signature" in receiver.requests[0].headers


# --- status table and error log ----------------------------------------------------------------


async def test_the_status_table_shows_counts_and_times(
    server: Server, admin: WebClient, receiver: Receiver
) -> None:
    created = await make_webhook(server, receiver.url)
    await server.call("POST", "/api/v2/events", flag_event("e1"))
    await server.deliver()
    succeeded_at = server.clock()
    server.clock.advance(60)
    receiver.answer(400, "bad")
    await server.call("POST", "/api/v2/events", flag_event("e2"))
    await server.deliver()

    page = (await admin.get(WEBHOOK + "/configurations")).page
    row = page.one("tr", id=f"configuration-{created['_id']}")
    assert "On" in row.text
    assert page.one("td", data_column="success-count").text == "1"
    assert page.one("td", data_column="error-count").text == "1"
    assert page.one("time", data_ts=str(succeeded_at)).text == "2023-11-14 22:13:20 UTC"
    link = page.one("a", class_="error-link")
    assert link.attrs["href"] == f"{WEBHOOK}/{created['_id']}/activity?outcome=failure"
    assert page.one("a", aria_label="Edit").attrs["href"] == f"{WEBHOOK}/{created['_id']}/edit"
    assert page.one("button", aria_label="More actions")
    spark = page.one("svg", class_="sparkline")  # the last 24 hours: 1 success, 1 error
    assert spark.attrs["aria-label"] == "Last 24 hours: 1 successes, 1 errors"


async def test_the_error_log_lists_errors_newest_first(
    server: Server, admin: WebClient, receiver: Receiver
) -> None:
    created = await make_webhook(server, receiver.url)
    long_body = '{"errors": [' + ",".join(['"quota exceeded"'] * 60) + "]}"
    receiver.answer(400, long_body)
    receiver.answer(422, "unprocessable")
    await server.call("POST", "/api/v2/events", flag_event("e1"))
    await server.deliver()
    server.clock.advance(1)
    await server.call("POST", "/api/v2/events", flag_event("e2"))
    await server.deliver()

    page = (await admin.get(f"{WEBHOOK}/{created['_id']}/activity")).page
    codes = [e.text for e in page.find("span", class_="status-code")]
    assert codes == ["422", "400"]
    [folded] = [f for f in page.find("div", class_="fold") if "quota" in f.text]  # the response
    assert "Show full body" in folded.text
    assert '"quota exceeded",' in folded.text  # pretty-printed, one item per line
    times = [e.attrs["data-ts"] for e in page.find("time", data_format="local")]
    assert times == [str(server.clock()), str(server.clock() - 1000)]


async def test_every_integration_in_the_catalog_gets_a_working_form(
    server: Server, admin: WebClient
) -> None:
    csrf = await admin.csrf()
    for integration in server.runtime.catalog:
        base = f"{INTEGRATIONS}/{integration.key}"
        page = (await admin.get(base + "/new")).page
        for field in integration.form():
            name = "config." + field["key"]
            control = page.one(name=name)
            assert page.one("label", for_=control.attrs["id"]).text.startswith(field["label"])
        answer = await admin.post(base + "/new", {"csrf": csrf, "name": ""})
        assert answer.status == 400, integration.key
        required = [f["key"] for f in integration.form() if f["required"]]
        for key in required:
            assert answer.page.error_for("config." + key) == "Required."


async def test_the_error_log_says_what_happened_when_there_was_no_response(
    server: Server, admin: WebClient
) -> None:
    created = await make_webhook(server, f"http://127.0.0.1:{free_port()}/nothing-listens")
    await server.call("POST", "/api/v2/events", flag_event("e1"))
    await server.deliver()
    page = (await admin.get(f"{WEBHOOK}/{created['_id']}/activity")).page
    assert page.one("span", class_="badge").text == "No HTTP response"
    assert page.find("span", class_="status-code") == []
    assert "Connect" in page.one("p", class_="what").text
    assert "check the URL" in page.one("p", class_="hint").text


async def test_the_error_log_pages_back_in_time(
    server: Server, admin: WebClient, receiver: Receiver
) -> None:
    from pushgate.web.activity import ATTEMPTS_PER_PAGE as ERRORS_PER_PAGE

    created = await make_webhook(server, receiver.url)
    receiver.default = (400, "no", {})
    for number in range(ERRORS_PER_PAGE + 1):
        await server.call("POST", "/api/v2/events", flag_event(f"e{number}"))
    await server.deliver()
    base = f"{WEBHOOK}/{created['_id']}/activity"
    first = (await admin.get(base)).page
    rows = [e for e in first.elements if e.tag == "tr" and "data-attempt" in e.attrs]
    assert len(rows) == ERRORS_PER_PAGE
    older = first.one("a", href=f"{base}?before={rows[-1].attrs['data-attempt']}")
    second = (await admin.get(older.attrs["href"])).page
    rest = [e for e in second.elements if e.tag == "tr" and "data-attempt" in e.attrs]
    assert len(rest) == 1
    assert int(rest[0].attrs["data-attempt"]) < int(rows[-1].attrs["data-attempt"])
    assert second.one("a", href=base).text == "Newest attempts"


async def test_an_internal_error_shows_a_page_that_leaks_nothing(
    server: Server, admin: WebClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_args: object) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(server.runtime.store.configurations, "all", broken)
    answer = await admin.get(INTEGRATIONS)
    assert answer.status == 500
    assert "internal error" in answer.text
    assert "secret detail" not in answer.text


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        ("/settings/integrations?open=webhook", "/settings/integrations?open=webhook"),
        ("//evil.example/", "/"),
        ("/\\evil.example/", "/"),
        ("/\t/evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("", "/"),
    ],
)
def test_redirects_after_sign_in_stay_on_this_site(candidate: str, expected: str) -> None:
    from pushgate.web.routing import local_path

    assert local_path(candidate) == expected


# --- health and resending ---------------------------------------------------------------------


async def paused_webhook(server: Server, receiver: Receiver) -> dict[str, Any]:
    """A webhook configuration paused for 600 s by its receiver's Retry-After."""
    created = await make_webhook(server, receiver.url)
    receiver.answer(429, "slow down", {"Retry-After": "600"})
    await server.call("POST", "/api/v2/events", flag_event("e0"))
    await server.deliver()
    return created


async def test_the_status_table_shows_health_pending_and_when_a_pause_ends(
    server: Server, admin: WebClient, receiver: Receiver
) -> None:
    created = await paused_webhook(server, receiver)  # what comes next waits
    for number in (1, 2):
        await server.call("POST", "/api/v2/events", flag_event(f"e{number}"))
    await server.deliver()

    page = (await admin.get(f"{WEBHOOK}/configurations")).page
    row = page.one("tr", id=f"configuration-{created['_id']}")
    assert "stands-out" in row.attrs["class"]
    [cell] = [e for e in page.find("td") if e.attrs.get("data-column") == "health"]
    badge = page.one("span", class_="health health-paused")
    assert badge.text == "Paused"
    assert "Retry-After 600 s" in badge.attrs["title"]
    assert "3 pending" in cell.text
    assert "resumes" in cell.text
    integrations = (await admin.get(INTEGRATIONS)).page
    assert integrations.one("span", class_="health health-paused").text == "1 paused"


async def test_the_configuration_panel_shows_health_pending_and_when_a_pause_ends(
    server: Server, admin: WebClient, receiver: Receiver
) -> None:
    created = await paused_webhook(server, receiver)

    page = (await admin.get(f"{WEBHOOK}/{created['_id']}/edit")).page
    line = page.one("p", class_="panel-health")
    assert line.attrs["data-health"] == "paused"
    assert line.text.startswith("Paused 1 pending")
    assert "resumes" in line.text
    assert line.text.endswith("Activity")  # a link to the configuration's Activity page


async def test_resend_failed_deliveries_shows_the_count_asks_and_queues_them(
    server: Server, admin: WebClient, receiver: Receiver
) -> None:
    created = await make_webhook(server, receiver.url)
    receiver.default = (400, "refused", {})
    for number in range(2):
        await server.call("POST", "/api/v2/events", flag_event(f"e{number}"))
    await server.deliver()
    errors = f"{WEBHOOK}/{created['_id']}/activity"

    page = (await admin.get(errors)).page
    assert page.one("h2", id="resend-title").text == "Resend 2 failed deliveries?"
    answer = await admin.post(f"{WEBHOOK}/{created['_id']}/replay", {"csrf": page.csrf})
    assert answer.status == 303
    assert answer.location == errors + "?outcome=failure&resent=2"
    shown = (await admin.get(answer.location)).page
    assert shown.one("div", class_="alert alert-success").text == (
        "Queued 2 failed deliveries to send again."
    )

    receiver.default = (200, "ok", {})
    receiver.requests.clear()
    await server.deliver()
    assert sorted(r.json()["_id"] for r in receiver.requests) == ["e0", "e1"]
    assert not (await admin.get(errors)).page.find("dialog", id="resend")  # none failed now


async def test_resending_needs_a_writer_and_the_csrf_token(
    server: Server, web: WebClient, receiver: Receiver
) -> None:
    created = await make_webhook(server, receiver.url)
    receiver.default = (400, "refused", {})
    await server.call("POST", "/api/v2/events", flag_event("e0"))
    await server.deliver()
    _, reader = await token(server, Role.READER)
    assert (await web.sign_in(reader)).status == 303
    errors = f"{WEBHOOK}/{created['_id']}/activity"
    page = (await web.get(errors)).page
    assert not page.find("dialog", id="resend")
    answer = await web.post(f"{WEBHOOK}/{created['_id']}/replay", {"csrf": page.csrf})
    assert answer.status == 403
    assert (await server.runtime.store.deliveries.counts())[DeliveryState.FAILED] == 1


# --- Sources ----------------------------------------------------------------------------------


async def test_the_sources_page_shows_each_sources_events_and_last_one(
    server: Server, admin: WebClient
) -> None:
    status, quiet = await server.call(
        "POST", "/api/v2/sources", {"name": "Staging", "kind": "standard-webhooks"}
    )
    assert status == 201
    secret = "ld-webhook-secret-0123456789"
    _, busy = await server.call(
        "POST",
        "/api/v2/sources",
        {"name": "Prod", "kind": "launchdarkly-webhook", "secret": secret},
    )
    for event_id in ("ld-1", "ld-2", "ld-2"):  # the repeat is not a new event
        body = json.dumps(flag_event(event_id)).encode()
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        async with server.session.post(
            busy["ingestUrl"],
            data=body,
            headers={"X-LD-Signature": signature, "Content-Type": "application/json"},
        ) as answer:
            assert answer.status == 202

    page = (await admin.get("/settings/sources")).page
    prod = page.one("tr", id=f"source-{busy['_id']}")
    assert "Prod" in prod.text
    assert "LaunchDarkly webhook" in prod.text
    assert busy["ingestUrl"] in prod.text
    assert cell(page, busy["_id"], "events-received") == "2"  # the repeat is not counted
    assert cell(page, busy["_id"], "last-event-id") == "ld-2"
    assert cell(page, busy["_id"], "last-event").startswith(utc_text(server.clock()))
    assert cell(page, quiet["_id"], "events-received") == "0"
    assert cell(page, quiet["_id"], "last-event") == "Nothing yet"
    assert secret not in page.html
    assert quiet["secret"] not in page.html
    nav = page.one("nav", aria_label="Settings sections")
    assert "Sources" in nav.text


def cell(page: Any, source_id: str, column: str) -> str:
    """The text of a column in the row of a source."""
    start = page.elements.index(page.one("tr", id=f"source-{source_id}"))
    return str(next(e for e in page.elements[start:] if e.attrs.get("data-column") == column).text)


def utc_text(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@pytest.mark.parametrize("role", [Role.READER, Role.WRITER])
async def test_the_sources_page_is_for_admin_tokens(
    server: Server, web: WebClient, role: Role
) -> None:
    _, value = await token(server, role)
    assert (await web.sign_in(value)).status == 303
    answer = await web.get("/settings/sources")
    assert answer.status == 403
    assert "admin tokens" in answer.text
    settings = (await web.get("/settings")).page
    assert "Sources" not in settings.one("nav", aria_label="Settings sections").text
