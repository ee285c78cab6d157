"""What the Activity page shows of one attempt: the request sent and the answer, masked. Pure.

Kept with the attempt (store/attempts.py) as one JSON text, so nothing is stored unmasked:

    request   method, URL (no user, password or query; a path that holds a secret hidden),
              headers (credential headers and every secret value masked), body (cut at the limit)
    response  status, headers, body (cut at the limit), all masked

Built on the delivery hot path from what the engine already has, with the target's redactor
(built once per set of secrets), so one attempt costs one regex pass per body and header.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pushgate.integrations.base import InboundResponse, OutboundRequest
from pushgate.masking import SECRET_MASK, Redactor

# Header names that carry credentials whatever their value: masked whole.
CREDENTIAL_WORDS = ("auth", "key", "token", "secret", "signature", "password", "cookie")
# What replaces a path or query that is not shown.
HIDDEN = "…"


def safe_url(url: str, mask: Redactor) -> str:
    """`url` without user, password and query; its path hidden when it holds a secret."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    path = parts.path
    if mask and mask.mask(url) != url:
        path = "/" + HIDDEN if path else ""
    query = HIDDEN if parts.query else ""
    return urlunsplit((parts.scheme, host, path, query, ""))


def masked_headers(headers: Mapping[str, str], mask: Redactor) -> dict[str, str]:
    """Headers with credential headers masked whole and secret values masked anywhere."""
    shown: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if any(word in lowered for word in CREDENTIAL_WORDS):
            shown[name] = SECRET_MASK
        else:
            shown[name] = mask.mask(value)
    return shown


def _body(body: bytes, limit: int, mask: Redactor, *, cut: bool = False) -> dict[str, Any]:
    truncated = cut or len(body) > limit
    text = body[:limit].decode("utf-8", errors="replace")
    return {"body": mask.mask(text, cut=truncated), "truncated": truncated}


def capture(
    request: OutboundRequest | None,
    response: InboundResponse | None,
    mask: Redactor,
    *,
    limit: int,
) -> str | None:
    """The request and response of an attempt as stored: JSON text, masked; None when
    nothing was sent."""
    if request is None:
        return None
    detail: dict[str, Any] = {
        "request": {
            "method": request.method,
            "url": safe_url(request.url, mask),
            "headers": masked_headers(request.headers, mask),
            **_body(request.body, limit, mask),
        }
    }
    if response is not None:
        detail["response"] = {
            "status": response.status,
            "headers": masked_headers(response.headers, mask),
            **_body(response.body, limit, mask, cut=response.truncated),
        }
    return json.dumps(detail, separators=(",", ":"))
