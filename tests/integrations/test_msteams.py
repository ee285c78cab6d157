"""Microsoft Teams adapter against a local channel webhook that checks the card contract."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web

from pushgate.errors import InvalidRequest, PermanentDeliveryError, RetryableDeliveryError
from pushgate.integrations.msteams import Teams

from .conftest import FLAG_EVENT, PROJECT_EVENT, Attempt, VendorFactory

# Teams refuses messages above about 28 KB.
TEAMS_SIZE_LIMIT = 28 * 1024
WEBHOOK_PATH = "/webhookb2/abc@def/IncomingWebhook/123/456"


class Channel:
    """A Teams channel webhook: legacy connectors answer 200 `1`, Workflows answer 202."""

    def __init__(self, *, workflows: bool = False) -> None:
        self.workflows = workflows
        self.cards: list[dict[str, Any]] = []
        self.script: list[web.Response] = []

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post(WEBHOOK_PATH, self.post)
        return app

    async def post(self, request: web.Request) -> web.Response:
        if self.script:
            return self.script.pop(0)
        raw = await request.read()
        if len(raw) > TEAMS_SIZE_LIMIT:
            return web.Response(status=413, text="Request Entity Too Large")
        if request.content_type != "application/json":
            return self.bad("Unsupported content type")
        try:
            message = json.loads(raw)
        except ValueError:
            return self.bad("Invalid JSON")
        problem = card_problem(message)
        if problem:
            return self.bad(problem)
        self.cards.append(message["attachments"][0]["content"])
        if self.workflows:
            return web.Response(status=202)
        return web.Response(text="1")

    def bad(self, problem: str) -> web.Response:
        if self.workflows:
            body = {"error": {"code": "InvalidRequestContent", "message": problem}}
            return web.json_response(body, status=400)
        return web.Response(
            status=400, text=f"Bad payload received by generic incoming webhook. {problem}"
        )


def card_problem(message: Any) -> str | None:
    """What breaks the documented message shape, or None."""
    if not isinstance(message, dict) or message.get("type") != "message":
        return 'type must be "message"'
    attachments = message.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return "attachments must be a non-empty array"
    attachment = attachments[0]
    if attachment.get("contentType") != "application/vnd.microsoft.card.adaptive":
        return "contentType must be application/vnd.microsoft.card.adaptive"
    card = attachment.get("content")
    if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
        return "content must be an AdaptiveCard"
    if not isinstance(card.get("version"), str):
        return "version must be a string"
    for element in card.get("body", []):
        if element.get("type") != "TextBlock" or not isinstance(element.get("text"), str):
            return "body elements must be TextBlocks with text"
    for action in card.get("actions", []):
        if action.get("type") != "Action.OpenUrl" or not isinstance(action.get("url"), str):
            return "actions must be Action.OpenUrl with a url"
        if not isinstance(action.get("title"), str):
            return "Action.OpenUrl needs a title"
    return None


def texts(card: dict[str, Any]) -> list[str]:
    return [element["text"] for element in card["body"]]


async def start(vendor: VendorFactory, channel: Channel) -> dict[str, Any]:
    base = await vendor(channel.app())
    return {"url": base + WEBHOOK_PATH}


async def test_flag_event_becomes_a_card_with_title_place_details_comment_and_link(
    vendor: VendorFactory,
) -> None:
    channel = Channel()
    config = await start(vendor, channel)
    entry = {**FLAG_EVENT, "description": "- Default rule: **true**"}

    assert await Attempt(Teams()).send(config, entry) is None

    [card] = channel.cards
    assert card["version"] == "1.2"
    assert texts(card) == [
        "Ana Lopez turned on the flag New checkout in Production",
        "Project: Web shop · Environment: Production",
        "- Default rule: true",
        "Comment: Rolling out to everyone",
    ]
    assert card["body"][0]["weight"] == "Bolder"
    assert card["actions"] == [
        {
            "type": "Action.OpenUrl",
            "title": "View the change",
            "url": "https://app.example.com/web/production/features/new-checkout",
        }
    ]


async def test_workflows_webhook_accepting_with_202_is_success(vendor: VendorFactory) -> None:
    channel = Channel(workflows=True)
    config = await start(vendor, channel)

    assert await Attempt(Teams()).send(config, FLAG_EVENT) is None
    assert len(channel.cards) == 1


async def test_project_event_names_the_project_and_has_no_button_without_a_link(
    vendor: VendorFactory,
) -> None:
    channel = Channel()
    config = await start(vendor, channel)

    assert await Attempt(Teams()).send(config, PROJECT_EVENT) is None

    [card] = channel.cards
    assert texts(card) == ["Bo renamed the project Web shop", "Project: Web shop"]
    assert "actions" not in card


async def test_validation_event_posts_a_test_card(vendor: VendorFactory) -> None:
    channel = Channel(workflows=True)
    config = await start(vendor, channel)

    assert await Attempt(Teams()).validate(config) is None

    [card] = channel.cards
    assert texts(card)[0] == "pushgate connection test"
    assert "Project: pushgate · Environment: test" in texts(card)


async def test_legacy_200_with_an_error_text_instead_of_1_is_a_permanent_failure(
    vendor: VendorFactory,
) -> None:
    channel = Channel()
    config = await start(vendor, channel)
    channel.script.append(web.Response(text="Summary or Text is required."))

    failure = await Attempt(Teams()).send(config, FLAG_EVENT)

    assert isinstance(failure, PermanentDeliveryError)
    assert failure.status_code == 200
    assert failure.response_body == "Summary or Text is required."
    assert failure.hint is not None
    assert "answers 1" in failure.hint


async def test_legacy_200_reporting_a_429_from_teams_is_retryable(vendor: VendorFactory) -> None:
    channel = Channel()
    config = await start(vendor, channel)
    report = (
        "Webhook message delivery failed with error: Microsoft Teams endpoint returned "
        "HTTP error 429 with ContextId tcid=0,server=msgapi-production-eus-azsc2-4-170,cv=deadbeef"
    )
    channel.script.append(web.Response(text=report))

    failure = await Attempt(Teams()).send(config, FLAG_EVENT)

    assert isinstance(failure, RetryableDeliveryError)
    assert failure.response_body == report


async def test_429_is_retryable_and_carries_retry_after(vendor: VendorFactory) -> None:
    channel = Channel(workflows=True)
    config = await start(vendor, channel)
    channel.script.append(web.Response(status=429, headers={"Retry-After": "7"}))

    failure = await Attempt(Teams()).send(config, FLAG_EVENT)

    assert isinstance(failure, RetryableDeliveryError)
    assert failure.status_code == 429
    assert failure.retry_after == 7


async def test_404_means_the_webhook_is_gone_and_is_permanent(vendor: VendorFactory) -> None:
    base = await vendor(Channel().app())

    failure = await Attempt(Teams()).send({"url": base + "/webhookb2/deleted"}, FLAG_EVENT)

    assert isinstance(failure, PermanentDeliveryError)
    assert failure.status_code == 404
    assert failure.hint is not None
    assert "no longer exists" in failure.hint


async def test_401_from_a_workflows_url_is_permanent_and_points_at_the_url(
    vendor: VendorFactory,
) -> None:
    channel = Channel(workflows=True)
    config = await start(vendor, channel)
    body = {"error": {"code": "DirectApiAuthorizationRequired", "message": "sig is invalid"}}
    channel.script.append(web.json_response(body, status=401))

    failure = await Attempt(Teams()).send(config, FLAG_EVENT)

    assert isinstance(failure, PermanentDeliveryError)
    assert failure.hint is not None
    assert "webhook URL" in failure.hint


async def test_long_details_are_cut_so_the_card_stays_under_the_teams_limit(
    vendor: VendorFactory,
) -> None:
    channel = Channel()
    config = await start(vendor, channel)
    entry = {**FLAG_EVENT, "description": "数据" * 20_000, "comment": "c" * 10_000}

    assert await Attempt(Teams()).send(config, entry) is None

    [card] = channel.cards
    details, comment = texts(card)[2], texts(card)[3]
    assert details.startswith("数据")
    assert details.endswith("…")
    assert comment.endswith("…")


def test_config_without_url_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidRequest, match=r"config\.url: Field required"):
        Teams().parse_config({})


def test_config_with_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(InvalidRequest, match=r"config\.url"):
        Teams().parse_config({"url": "teams.microsoft.com/webhook"})
