"""The engine's credentials hook seen from integrations that do not use it."""

from __future__ import annotations

from aiohttp import web

from pushgate.errors import PermanentDeliveryError
from pushgate.integrations.webhook import Webhook

from .conftest import FLAG_EVENT, Attempt, VendorFactory


async def test_a_401_is_not_resent_when_the_integration_fetched_no_credentials(
    vendor: VendorFactory,
) -> None:
    posts: list[str | None] = []

    async def refuse(request: web.Request) -> web.Response:
        posts.append(request.headers.get("Authorization"))
        return web.Response(status=401, text="who are you?")

    app = web.Application()
    app.router.add_post("/hook", refuse)
    base = await vendor(app)

    failure = await Attempt(Webhook()).send({"url": base + "/hook"}, FLAG_EVENT)

    assert isinstance(failure, PermanentDeliveryError)
    assert failure.status_code == 401
    assert posts == [None]
