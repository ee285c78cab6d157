"""Ingest with group commit: concurrent requests share a transaction and lose nothing.

What a request is told is what is stored: a 202 only after its events are committed, none
when the commit failed, and a match against the configurations as they are at the commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from conftest import Receiver, Server, flag_event
from pushgate.domain import DeliveryState
from pushgate.policy import DEFAULT_STATEMENTS
from pushgate.runtime import running
from pushgate.settings import Settings


async def webhook(server: Server, url: str, name: str = "hook") -> str:
    status, created = await server.call(
        "POST",
        "/api/v2/integrations/webhook",
        {"name": name, "on": True, "config": {"url": url}},
    )
    assert status == 201, created
    return str(created["_id"])


async def test_concurrent_single_event_posts_are_each_answered_once_committed(
    server: Server, receiver: Receiver
) -> None:
    await webhook(server, receiver.url)
    answers = await asyncio.gather(
        *(server.call("POST", "/api/v2/events", flag_event(f"e{i}")) for i in range(60))
    )
    assert all(status == 202 for status, _ in answers)
    assert sorted(a["accepted"][0] for _, a in answers) == sorted(f"e{i}" for i in range(60))
    counts = await server.runtime.store.deliveries.counts()
    assert counts[DeliveryState.PENDING] == 60
    await server.deliver()
    assert len(receiver.requests) == 60


async def test_the_same_event_posted_twice_at_once_is_accepted_and_delivered_once(
    server: Server, receiver: Receiver
) -> None:
    await webhook(server, receiver.url)
    answers = await asyncio.gather(
        *(server.call("POST", "/api/v2/events", flag_event("same")) for _ in range(10))
    )
    assert all(status == 202 for status, _ in answers)
    assert sum(len(a["accepted"]) for _, a in answers) == 1
    assert sum(a["deliveries"] for _, a in answers) == 1
    assert all(a["ids"] == ["same"] for _, a in answers)
    await server.deliver()
    assert len(receiver.requests) == 1


async def test_a_configuration_changed_by_another_process_is_matched_at_the_next_commit(
    server: Server, receivers: Callable[..., Any], settings: Settings
) -> None:
    first, second = await receivers(), await receivers()
    await webhook(server, first.url, "first")
    status, _ = await server.call("POST", "/api/v2/events", flag_event("before"))
    assert status == 202  # the policies of "first" are now parsed and kept

    async with running(settings, with_worker=False) as other_process:
        row = await other_process.store.configurations.create(
            integration_key="webhook",
            name="second",
            on=True,
            tags=[],
            config={"url": second.url},
            secrets=None,
            statements=[statement.to_json() for statement in DEFAULT_STATEMENTS],
            now=0,
        )
    _, answer = await server.call("POST", "/api/v2/events", flag_event("after"))
    assert answer["deliveries"] == 2  # it knew of "second" although its cache did not

    status, _ = await server.call(
        "PATCH",
        f"/api/v2/integrations/webhook/{row.id}",
        [{"op": "replace", "path": "/on", "value": False}],
    )
    assert status == 200
    _, answer = await server.call("POST", "/api/v2/events", flag_event("later"))
    assert answer["deliveries"] == 1
