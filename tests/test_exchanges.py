"""What the attempt log keeps of a request and a response: nothing that holds a secret."""

from __future__ import annotations

import json

import pytest

from pushgate.exchanges import capture, masked_headers, safe_url
from pushgate.integrations.base import InboundResponse, OutboundRequest
from pushgate.masking import redactor

SECRET = "s3cret-value-for-the-log"
MASK = redactor((SECRET,))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://api.example.com/v1/events", "https://api.example.com/v1/events"),
        ("https://user:pw@api.example.com/v1/events", "https://api.example.com/v1/events"),
        ("https://api.example.com/v1/events?api_key=abc", "https://api.example.com/v1/events?…"),
        (f"https://hooks.example.com/services/{SECRET}", "https://hooks.example.com/…"),
        ("http://127.0.0.1:8088/services/collector", "http://127.0.0.1:8088/services/collector"),
    ],
)
def test_urls_lose_credentials_query_and_secret_paths(url: str, shown: str) -> None:
    assert safe_url(url, MASK) == shown


def test_credential_headers_are_masked_by_name_and_secrets_by_value() -> None:
    headers = {
        "Authorization": "Bearer anything",
        "DD-API-KEY": "short",
        "X-Trace": f"id {SECRET}",
        "Content-Type": "application/json",
    }
    assert masked_headers(headers, MASK) == {
        "Authorization": "********",
        "DD-API-KEY": "********",
        "X-Trace": "id ********",
        "Content-Type": "application/json",
    }


def test_bodies_are_cut_at_the_limit_and_a_cut_secret_is_masked() -> None:
    request = OutboundRequest("POST", "https://x.example/h", {}, b"a" * 10 + SECRET.encode())
    answer = InboundResponse(500, {}, f"echo {SECRET}".encode())
    detail = json.loads(capture(request, answer, MASK, limit=14) or "")
    assert detail["request"] == {
        "method": "POST",
        "url": "https://x.example/h",
        "headers": {},
        "body": "a" * 10 + "********",  # "s3cr", the beginning of the secret, masked
        "truncated": True,
    }
    assert detail["response"] == {
        "status": 500,
        "headers": {},
        "body": "echo ********",  # "echo s3cret-va", cut inside the secret
        "truncated": True,
    }


def test_nothing_is_kept_when_nothing_was_sent() -> None:
    assert capture(None, None, MASK, limit=100) is None
