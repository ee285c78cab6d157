"""Splunk adapter against a local HTTP Event Collector, over HTTP and over HTTPS."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import Server, flag_event, free_port
from pushgate.errors import (
    InvalidRequest,
    PermanentDeliveryError,
    RetryableDeliveryError,
    TransportError,
)
from pushgate.events import parse_entry
from pushgate.integrations.splunk import Splunk

from .conftest import FLAG_EVENT, PROJECT_EVENT, Attempt, VendorFactory

TOKEN = "11111111-2222-4333-8444-555555555555"
ALLOWED_INDEXES = {"main"}
# A `time` above this is not Unix seconds but milliseconds (year 2286 and later in seconds).
MAX_SECONDS = 10_000_000_000


def hec_answer(status: int, code: int, text: str) -> web.Response:
    return web.json_response({"text": text, "code": code}, status=status)


class Collector:
    """An HTTP Event Collector with one token, answering like Splunk's."""

    def __init__(self) -> None:
        self.envelopes: list[dict[str, Any]] = []
        self.script: list[web.Response] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/services/collector/event", self.event)
        return app

    async def event(self, request: web.Request) -> web.Response:
        if self.script:
            return self.script.pop(0)
        authorization = request.headers.get("Authorization")
        if authorization is None:
            return hec_answer(401, 2, "Token is required")
        scheme, _, token = authorization.partition(" ")
        if scheme != "Splunk" or not token:
            return hec_answer(401, 3, "Invalid authorization")
        if token != TOKEN:
            return hec_answer(403, 4, "Invalid token")
        try:
            envelope = json.loads(await request.read())
        except ValueError:
            return hec_answer(400, 6, "Invalid data format")
        if not isinstance(envelope, dict):
            return hec_answer(400, 6, "Invalid data format")
        if "event" not in envelope:
            return hec_answer(400, 12, "Event field is required")
        if envelope["event"] in ("", {}, None):
            return hec_answer(400, 13, "Event field cannot be blank")
        # Stricter than Splunk, which would take "1700000000000" and misfile it by 50,000 years.
        time = envelope.get("time")
        if time is not None and (
            isinstance(time, bool) or not isinstance(time, int | float) or time > MAX_SECONDS
        ):
            return hec_answer(400, 6, "Invalid data format")
        for field in ("source", "sourcetype", "host", "index"):
            if field in envelope and not isinstance(envelope[field], str):
                return hec_answer(400, 6, "Invalid data format")
        if "index" in envelope and envelope["index"] not in ALLOWED_INDEXES:
            return hec_answer(400, 7, "Incorrect index")
        self.envelopes.append(envelope)
        return hec_answer(200, 0, "Success")


def config(base: str, **extra: Any) -> dict[str, Any]:
    return {"base-url": base, "token": TOKEN, **extra}


async def test_flag_event_is_indexed_with_who_what_where_why_and_link(
    vendor: VendorFactory,
) -> None:
    collector = Collector()
    base = await vendor(collector.app())

    assert await Attempt(Splunk()).send(config(base), FLAG_EVENT) is None

    [envelope] = collector.envelopes
    assert envelope["time"] == 1_700_000_000.0
    assert envelope["sourcetype"] == "pushgate:change"
    assert envelope["source"] == "pushgate"
    assert "index" not in envelope
    assert envelope["event"] == {
        "id": "f1",
        "kind": "flag",
        "action": "updateOn",
        "message": "Ana Lopez turned on the flag New checkout in Production",
        "name": "New checkout",
        "key": "new-checkout",
        "resource": "proj/web:env/production:flag/new-checkout",
        "project": {"key": "web", "name": "Web shop"},
        "environment": {"key": "production", "name": "Production"},
        "user": {"name": "Ana Lopez", "email": "ana@example.com"},
        "comment": "Rolling out to everyone",
        "url": "https://app.example.com/web/production/features/new-checkout",
    }


async def test_time_keeps_milliseconds_as_a_fraction_of_seconds(vendor: VendorFactory) -> None:
    collector = Collector()
    base = await vendor(collector.app())

    entry = {**FLAG_EVENT, "date": 1_700_000_000_250}
    assert await Attempt(Splunk()).send(config(base), entry) is None

    assert collector.envelopes[0]["time"] == 1_700_000_000.25


async def test_project_event_has_project_but_no_environment(vendor: VendorFactory) -> None:
    collector = Collector()
    base = await vendor(collector.app())

    assert await Attempt(Splunk()).send(config(base + "/"), PROJECT_EVENT) is None

    event = collector.envelopes[0]["event"]
    assert event["kind"] == "project"
    assert event["message"] == "Bo renamed the project Web shop"
    assert event["project"] == {"key": "web", "name": "Web shop"}
    assert "environment" not in event
    assert event["user"] == {"name": "Bo", "email": "bo@example.com"}


async def test_validation_event_is_indexed(vendor: VendorFactory) -> None:
    collector = Collector()
    base = await vendor(collector.app())

    assert await Attempt(Splunk()).validate(config(base)) is None

    event = collector.envelopes[0]["event"]
    assert event["action"] == "validateConnection"
    assert event["message"] == "pushgate connection test"


async def test_wrong_token_is_permanent_and_the_hint_names_the_token(
    vendor: VendorFactory,
) -> None:
    base = await vendor(Collector().app())

    failure = await Attempt(Splunk()).send(
        {**config(base), "token": "nope-not-a-token"}, FLAG_EVENT
    )

    assert isinstance(failure, PermanentDeliveryError)
    assert failure.status_code == 403
    assert failure.response_body == '{"text": "Invalid token", "code": 4}'
    assert failure.hint is not None
    assert "token" in failure.hint


async def test_server_busy_is_retryable_and_honours_retry_after(vendor: VendorFactory) -> None:
    collector = Collector()
    base = await vendor(collector.app())
    busy = web.json_response(
        {"text": "Server is busy", "code": 9}, status=503, headers={"Retry-After": "30"}
    )
    collector.script.append(busy)

    failure = await Attempt(Splunk()).send(config(base), FLAG_EVENT)

    assert isinstance(failure, RetryableDeliveryError)
    assert failure.status_code == 503
    assert failure.retry_after == 30
    assert "HEC code 9" in failure.description


async def test_incorrect_index_is_permanent_with_a_hint_about_the_index(
    vendor: VendorFactory,
) -> None:
    collector = Collector()
    base = await vendor(collector.app())
    collector.script.append(hec_answer(400, 7, "Incorrect index"))

    failure = await Attempt(Splunk()).send(config(base), FLAG_EVENT)

    assert isinstance(failure, PermanentDeliveryError)
    assert failure.hint is not None
    assert "index" in failure.hint


async def test_a_200_that_is_not_an_hec_answer_is_a_failure_pointing_at_base_url(
    vendor: VendorFactory,
) -> None:
    collector = Collector()
    base = await vendor(collector.app())
    collector.script.append(web.Response(text="<html>Splunk Web</html>", content_type="text/html"))

    failure = await Attempt(Splunk()).send(config(base), FLAG_EVENT)

    assert isinstance(failure, PermanentDeliveryError)
    assert failure.hint is not None
    assert "base-url" in failure.hint


def test_config_without_base_url_and_token_is_refused_naming_both() -> None:
    with pytest.raises(InvalidRequest) as caught:
        Splunk().parse_config({"skip-ca-verification": True})

    assert "config.base-url: Field required" in caught.value.message
    assert "config.token: Field required" in caught.value.message


def test_config_base_url_with_the_collector_path_is_refused() -> None:
    with pytest.raises(InvalidRequest, match=r"config\.base-url: .*without /services/collector"):
        Splunk().parse_config(config("https://splunk.example.com:8088/services/collector/event"))


def test_config_keeps_kebab_case_keys_and_fills_the_default() -> None:
    splunk = Splunk()
    parsed = splunk.parse_config(config("https://splunk.example.com:8088"))

    assert splunk.dump_config(parsed, mask=True) == {
        "base-url": "https://splunk.example.com:8088",
        "token": "********",
        "skip-ca-verification": False,
    }


# --- TLS: skip-ca-verification ------------------------------------------------------------


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no CA signed, and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "splunk.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "hec.crt", directory / "hec.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
async def https_collector(
    tmp_path: Path,
) -> AsyncIterator[tuple[Collector, str]]:
    """A collector on https://127.0.0.1 with a self-signed certificate."""
    cert_path, key_path = self_signed_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    collector = Collector()
    runner = web.AppRunner(collector.app(), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    yield collector, f"https://127.0.0.1:{port}"
    await runner.cleanup()


async def test_self_signed_collector_is_refused_while_verification_is_on(
    https_collector: tuple[Collector, str],
) -> None:
    collector, base = https_collector

    failure = await Attempt(Splunk()).send(config(base), FLAG_EVENT)

    assert isinstance(failure, TransportError)
    assert failure.hint is not None
    assert "TLS" in failure.hint
    assert collector.envelopes == []


async def test_skip_ca_verification_reaches_a_self_signed_collector_for_that_config_only(
    https_collector: tuple[Collector, str],
) -> None:
    collector, base = https_collector
    splunk = Splunk()
    attempt = Attempt(splunk)
    engine = attempt.engine
    payload = parse_entry(FLAG_EVENT, now_ms=1_700_000_000_000)
    trusting = splunk.parse_config(config(base, **{"skip-ca-verification": True}))
    verifying = splunk.parse_config(config(base))
    try:
        # One transport and its connection pool for both, in both orders.
        first = await engine.attempt(splunk, trusting, payload)
        second = await engine.attempt(splunk, verifying, payload)
        third = await engine.attempt(splunk, trusting, payload)
    finally:
        await engine.transport.close()

    assert first is None
    assert isinstance(second, TransportError)
    assert third is None
    assert len(collector.envelopes) == 2


async def test_configuration_made_through_the_api_keeps_kebab_keys_masks_the_token_and_delivers(
    server: Server, vendor: VendorFactory
) -> None:
    collector = Collector()
    base = await vendor(collector.app())
    body = {"name": "splunk", "on": True, "config": config(base)}

    status, created = await server.call("POST", "/api/v2/integrations/splunk", body)
    assert status == 201, created
    assert created["config"] == {
        "base-url": base,
        "token": "********",
        "skip-ca-verification": False,
    }
    await server.call("POST", "/api/v2/events", flag_event("e1"))
    assert await server.deliver() == 1

    assert [envelope["event"]["id"] for envelope in collector.envelopes] == ["e1"]
    _, stored = await server.call("GET", f"/api/v2/integrations/splunk/{created['_id']}")
    assert stored["_status"]["successCount"] == 1
