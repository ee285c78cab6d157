"""The attempt log API: successes and failures kept, bounded, filtered, paged, secrets masked."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from conftest import Receiver, Server, assert_described, flag_event, runtime_of, start_server
from pushgate.clock import ManualClock
from pushgate.settings import Settings

HOOK = "/api/v2/integrations/webhook"
TOKEN = "Bearer attempt-log-authorization-9f3k"
SIGNING = "whsec-attempt-log-signing-secret-77"


async def hook(server: Server, receiver: Receiver, **config: Any) -> str:
    body = {"name": "hook", "on": True, "config": {"url": receiver.url + "/in/x", **config}}
    status, created = await server.call("POST", HOOK, body)
    assert status == 201, created
    return str(created["_id"])


async def send(server: Server, *event_ids: str) -> None:
    status, _ = await server.call(
        "POST", "/api/v2/events", {"items": [flag_event(e) for e in event_ids]}
    )
    assert status == 202
    await server.deliver()


async def attempts(server: Server, cid: str, query: str = "") -> list[dict[str, Any]]:
    status, page = await server.call("GET", f"{HOOK}/{cid}/attempts{query}")
    assert status == 200, page
    items: list[dict[str, Any]] = page["items"]
    return items


@pytest.fixture
async def small_server(settings_factory: Callable[..., Settings]) -> AsyncIterator[Server]:
    """A server that keeps 10 attempts per configuration and retries nothing."""
    settings = settings_factory(attempt_log_size=10, retry_schedule="", attempt_body_limit=64)
    clock = ManualClock()
    uv, task, url = await start_server(settings, clock)
    async with aiohttp.ClientSession() as session:
        yield Server(url, runtime_of(uv), clock, session)
    uv.should_exit = True
    await task
    assert_described(uv)


async def test_successes_and_failures_are_both_listed_newest_first(
    small_server: Server, receiver: Receiver
) -> None:
    cid = await hook(small_server, receiver)
    receiver.responder = lambda r: (503, "down", {}) if r.json()["_id"] == "bad" else (200, "", {})
    await send(small_server, "good", "bad")

    items = await attempts(small_server, cid)
    assert {(i["eventId"], i["outcome"], i.get("statusCode")) for i in items} == {
        ("good", "success", 200),
        ("bad", "failure", 503),
    }
    failed = next(i for i in items if i["outcome"] == "failure")
    assert failed["willRetry"] is False  # no retry schedule: given up
    assert [i["id"] for i in items] == sorted((i["id"] for i in items), reverse=True)
    assert all("request" not in i for i in items)  # detail only when expanded


async def test_successes_past_the_sample_rate_are_counted_but_not_logged(
    settings_factory: Callable[..., Settings], receiver: Receiver
) -> None:
    settings = settings_factory(attempt_log_successes=0, retry_schedule="")
    uv, task, url = await start_server(settings, ManualClock())
    try:
        async with aiohttp.ClientSession() as session:
            server = Server(url, runtime_of(uv), ManualClock(), session)
            cid = await hook(server, receiver)
            receiver.responder = lambda r: (
                (500, "", {}) if r.json()["_id"] == "x" else (200, "", {})
            )
            await send(server, "a", "b", "c", "x")

            assert [(i["eventId"], i["outcome"]) for i in await attempts(server, cid)] == [
                ("x", "failure")
            ]
            status, got = await server.call("GET", f"{HOOK}/{cid}")
            assert status == 200
            assert (got["_status"]["successCount"], got["_status"]["errorCount"]) == (3, 1)
    finally:
        uv.should_exit = True
        await task


async def test_filters_select_by_outcome_status_code_event_and_time(
    small_server: Server, receiver: Receiver
) -> None:
    cid = await hook(small_server, receiver)
    answers = {"a": 200, "b": 404, "c": 500}
    receiver.responder = lambda r: (answers[r.json()["_id"]], "", {})
    await send(small_server, "a")
    first = (await attempts(small_server, cid))[0]["timestamp"]
    small_server.clock.advance(60)
    await send(small_server, "b", "c")

    def ids(items: list[dict[str, Any]]) -> set[str]:
        return {i["eventId"] for i in items}

    assert ids(await attempts(small_server, cid, "?outcome=failure")) == {"b", "c"}
    assert ids(await attempts(small_server, cid, "?outcome=success")) == {"a"}
    assert ids(await attempts(small_server, cid, "?statusCode=404")) == {"b"}
    assert ids(await attempts(small_server, cid, "?eventId=c")) == {"c"}
    assert ids(await attempts(small_server, cid, f"?until={first}")) == {"a"}
    assert ids(await attempts(small_server, cid, f"?since={first + 1}")) == {"b", "c"}


async def test_the_log_is_bounded_and_paged_with_before(
    small_server: Server, receiver: Receiver
) -> None:
    cid = await hook(small_server, receiver)
    for batch in range(5):
        await send(small_server, *(f"e{batch}-{i}" for i in range(6)))

    status, page = await small_server.call("GET", f"{HOOK}/{cid}/attempts?limit=100")
    kept = page["items"]
    assert 10 <= len(kept) <= 11  # 10 kept, up to a tenth more between trims
    assert kept[0]["eventId"].startswith("e4-")  # the newest are the ones kept
    status, first = await small_server.call("GET", f"{HOOK}/{cid}/attempts?limit=4")
    status, second = await small_server.call("GET", first["_links"]["next"]["href"])
    assert status == 200
    assert [i["id"] for i in first["items"] + second["items"]] == [i["id"] for i in kept[:8]]


async def test_detail_masks_secrets_in_request_and_response(
    small_server: Server, receiver: Receiver
) -> None:
    cid = await hook(small_server, receiver, authorization=TOKEN, secret=SIGNING)
    # A receiver that echoes the credential it was sent, in its body and a header.
    receiver.responder = lambda r: (401, f"bad {r.headers['Authorization']}", {"X-Echo": TOKEN})
    await send(small_server, "e1")

    (item,) = await attempts(small_server, cid, "?expand=detail")
    request, response = item["request"], item["response"]
    assert request["method"] == "POST"
    assert request["url"] == f"{receiver.url}/…"  # the webhook URL is a secret: no path
    assert request["headers"]["Authorization"] == "********"
    assert '"_id":"e1"' in request["body"].replace(" ", "")[:64] or request["truncated"]
    assert response["status"] == 401
    assert response["headers"]["X-Echo"] == "********"
    text = str(item)
    for secret in (TOKEN, "attempt-log-authorization-9f3k", SIGNING, "/in/x"):
        assert secret not in text


@pytest.mark.parametrize(
    "query",
    [
        "?limit=0",
        "?limit=abc",
        "?before=-1",
        "?outcome=maybe",
        "?statusCode=99",
        "?since=soon",
        "?until=99999999999999999999999",
        "?expand=everything",
    ],
)
async def test_bad_parameters_are_answered_400_with_a_code(
    server: Server, receiver: Receiver, query: str
) -> None:
    cid = await hook(server, receiver)
    status, answer = await server.call("GET", f"{HOOK}/{cid}/attempts{query}")
    assert status == 400
    assert answer["code"] == "invalid_request"
    assert answer["message"]


async def test_a_reader_may_read_the_attempt_log(server: Server, receiver: Receiver) -> None:
    cid = await hook(server, receiver)
    status, created = await server.call("POST", "/api/v2/tokens", {"name": "r", "role": "reader"})
    assert status == 201
    status, _ = await server.call("GET", f"{HOOK}/{cid}/attempts", token=created["token"])
    assert status == 200
