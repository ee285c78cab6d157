"""The official LaunchDarkly Python client works against pushgate without validation errors."""

from __future__ import annotations

import asyncio
from typing import Any

import launchdarkly_api
import pytest
from launchdarkly_api.api import integration_audit_log_subscriptions_api as subscriptions
from launchdarkly_api.models import PatchOperation, StatementPost, SubscriptionPost

from conftest import Receiver, Server, flag_event


def client_for(server: Server) -> subscriptions.IntegrationAuditLogSubscriptionsApi:
    configuration = launchdarkly_api.Configuration(host=server.url)
    configuration.api_key["ApiKey"] = server.token
    return subscriptions.IntegrationAuditLogSubscriptionsApi(
        launchdarkly_api.ApiClient(configuration)
    )


async def blocking(call: Any, *args: Any) -> Any:
    """The client is synchronous: run it off the event loop that serves the requests."""
    return await asyncio.to_thread(call, *args)


async def test_client_creates_lists_gets_patches_and_deletes(
    server: Server, receiver: Receiver
) -> None:
    api = client_for(server)
    post = SubscriptionPost(
        name="Production flags to the webhook",
        on=True,
        tags=["ops"],
        config={"url": receiver.url, "secret": "whsec_dGVzdHNlY3JldHRlc3RzZWNyZXQ="},
        statements=[
            StatementPost(effect="allow", resources=["proj/*:env/production:flag/*"], actions=["*"])
        ],
    )
    created = await blocking(api.create_subscription, "webhook", post)
    assert created.id is not None
    assert created.kind == "webhook"
    assert created.config["secret"] == "********"
    assert created.statements[0].effect == "allow"

    listing = await blocking(api.get_subscriptions, "webhook")
    assert listing.key == "webhook"
    assert [item.id for item in listing.items] == [created.id]

    await server.call("POST", "/api/v2/events", flag_event("e1"))
    receiver.answer(500, "try later")
    await server.deliver()
    server.clock.advance(6)
    await server.deliver()

    fetched = await blocking(api.get_subscription_by_id, "webhook", created.id)
    assert fetched.status.success_count == 1
    assert fetched.status.error_count == 1
    assert fetched.status.last_success == server.clock()
    assert isinstance(fetched.status.last_error, int)
    assert fetched.status.errors[0].status_code == 500
    assert fetched.status.errors[0].response_body == "try later"

    patched = await blocking(
        api.update_subscription,
        "webhook",
        created.id,
        [PatchOperation(op="replace", path="/on", value=False)],
    )
    assert patched.on is False

    await blocking(api.delete_subscription, "webhook", created.id)
    with pytest.raises(launchdarkly_api.exceptions.NotFoundException):
        await blocking(api.get_subscription_by_id, "webhook", created.id)


async def test_client_sees_launchdarkly_error_shape(server: Server) -> None:
    api = client_for(server)
    with pytest.raises(launchdarkly_api.exceptions.BadRequestException) as raised:
        await blocking(api.create_subscription, "webhook", SubscriptionPost(name="x", config={}))
    assert '"code":"invalid_request"' in raised.value.body.replace(" ", "")
