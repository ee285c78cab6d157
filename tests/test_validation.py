"""Validate connection: the test event through the real adapter and transport."""

from __future__ import annotations

from conftest import Receiver, Server, free_port

HOOK = "/api/v2/integrations/webhook"


async def test_validate_saved_configuration_succeeds(server: Server, receiver: Receiver) -> None:
    _, created = await server.call(
        "POST", HOOK, {"name": "h", "config": {"url": receiver.url + "/in"}}
    )
    receiver.answer(202, '{"accepted": true}')
    status, report = await server.call("POST", f"{HOOK}/{created['_id']}/validate")
    assert status == 200
    assert report["ok"] is True
    assert report["statusCode"] == 202  # what the tool answered, on success too
    assert report["responseBody"] == '{"accepted": true}'
    assert isinstance(report["durationMs"], int)
    sent = receiver.requests[0].json()
    assert sent["_id"].startswith("pushgate-validation-")
    assert sent["name"] == "pushgate connection test"


async def test_validate_reports_status_and_body_and_changes_no_counter(
    server: Server, receiver: Receiver
) -> None:
    _, created = await server.call("POST", HOOK, {"name": "h", "config": {"url": receiver.url}})
    receiver.answer(503, "maintenance")
    status, report = await server.call("POST", f"{HOOK}/{created['_id']}/validate")
    assert status == 200
    assert report["ok"] is False
    assert report["statusCode"] == 503
    assert report["responseBody"] == "maintenance"
    assert "retried" in report["hint"]
    _, after = await server.call("GET", f"{HOOK}/{created['_id']}")
    assert after["_status"] == {"successCount": 0, "errorCount": 0, "errors": []}


async def test_validate_unsaved_config(server: Server, receiver: Receiver) -> None:
    status, report = await server.call(
        "POST", f"{HOOK}/validate", {"config": {"url": receiver.url}}
    )
    assert (status, report["ok"]) == (200, True)
    assert len(receiver.requests) == 1


async def test_validate_transport_error_names_what_happened(server: Server) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    status, report = await server.call("POST", f"{HOOK}/validate", {"config": {"url": url}})
    assert status == 200
    assert report["ok"] is False
    assert "statusCode" not in report
    assert report["error"]
    assert "check the URL" in report["hint"]


async def test_validate_with_edited_form_keeps_the_stored_secret(
    server: Server, receiver: Receiver
) -> None:
    _, created = await server.call(
        "POST",
        HOOK,
        {"name": "h", "config": {"url": "https://old.example", "secret": "s3cret-value"}},
    )
    form = {"config": {"url": receiver.url, "secret": "********"}}
    status, report = await server.call("POST", f"{HOOK}/{created['_id']}/validate", form)
    assert (status, report["ok"]) == (200, True)
    assert "webhook-signature" in receiver.requests[0].headers


async def test_validate_invalid_unsaved_config_is_400(server: Server) -> None:
    status, answer = await server.call("POST", f"{HOOK}/validate", {"config": {"url": 3}})
    assert status == 400
    assert "config.url" in answer["message"]


async def test_a_bug_in_an_adapter_is_a_permanent_failure_not_a_crash(receiver: Receiver) -> None:
    from pushgate.delivery.engine import Engine
    from pushgate.delivery.transport import Transport
    from pushgate.errors import PermanentDeliveryError
    from pushgate.events import validation_entry
    from pushgate.integrations.base import Endpoints, InboundResponse
    from pushgate.integrations.webhook import Webhook, WebhookConfig
    from pushgate.settings import Settings

    class Broken(Webhook):
        def classify(self, response: InboundResponse) -> None:
            raise KeyError("oops")

    engine = Engine(Transport(Settings(outbound_allow="127.0.0.0/8")), Endpoints())
    failure = await engine.attempt(Broken(), WebhookConfig(url=receiver.url), validation_entry(0))
    await engine.transport.close()
    assert isinstance(failure, PermanentDeliveryError)
    assert "KeyError" in failure.description
