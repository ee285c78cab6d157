"""Event sources: signed endpoints that senders post audit-log entries to, without a token.

    POST /ingest/{id} ─► the source (store) ─► `authenticate`: the signature of the raw body
                      ─► the body exactly as POST /api/v2/events takes it (`ingest.ingest`)
                      ─► 202 once committed; the source's counters (store)

Two kinds (`domain.SourceKind`):

- `launchdarkly-webhook`: LaunchDarkly's webhook integration signs each POST with
  `X-LD-Signature`, the hex HMAC-SHA256 of the raw body keyed by the webhook's secret (its
  UTF-8 bytes). The signature covers no time, so a captured body stays valid: posted again, it
  is the same event, and ingest is idempotent on `_id`, so a replay changes nothing for as long
  as the event is retained (PUSHGATE_RETENTION_DAYS; docs/security.md).
- `standard-webhooks`: `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`
  (space-separated `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, several while a sender
  rotates its secret; other versions are skipped). The secret is `whsec_<base64>` (or bare
  base64) of 24 to 64 bytes, the key being the decoded bytes. A timestamp more than
  `TOLERANCE_SECONDS` from now, either way, is refused, as the specification's libraries do:
  a captured message cannot be replayed later. A single entry without `_id` takes the
  `webhook-id`, the sender's idempotency key, so its retries are one event.

Signatures are compared in constant time. A refusal is `Unauthorized` naming the header and
what is wrong with it, never what was expected. Everything here is pure but `create`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pushgate.domain import SourceKind
from pushgate.errors import InvalidRequest, Unauthorized
from pushgate.integrations.base import SECRET_MASK
from pushgate.limits import NAME_LIMIT, check_text
from pushgate.sealing import SecretBox
from pushgate.store import SourceRow, Store

LD_SIGNATURE = "X-LD-Signature"
WEBHOOK_ID = "webhook-id"
WEBHOOK_TIMESTAMP = "webhook-timestamp"
WEBHOOK_SIGNATURE = "webhook-signature"
STANDARD_PREFIX = "whsec_"
# The Standard Webhooks libraries' tolerance between the sender's clock and ours: 5 minutes.
TOLERANCE_SECONDS = 5 * 60
# A LaunchDarkly webhook secret is the HMAC key itself: shorter ones could be guessed offline
# from one signed body. LaunchDarkly's own generated secrets are longer.
LD_SECRET_MIN = 16
SECRET_LIMIT = 256
# The specification's bounds on a Standard Webhooks key: 24 bytes (192 bits) to 64 (512 bits).
KEY_BYTES_MIN = 24
KEY_BYTES_MAX = 64
# What pushgate generates when no secret is given: 256-bit keys.
GENERATED_KEY_BYTES = 32
# A `webhook-id` travels in a header and may become the event's `_id`.
_MESSAGE_ID = re.compile(r"[\x21-\x7e]{1,256}")
_SECONDS = re.compile(r"[0-9]{1,15}")
_KEYS = ("name", "kind", "secret")
_SEALED = "secret"


def ingest_path(source_id: str) -> str:
    """Where a source's sender posts, relative to pushgate's base URL."""
    return f"/ingest/{source_id}"


def generate_secret(kind: SourceKind) -> str:
    """A new random secret in the form the kind's senders take."""
    key = secrets.token_bytes(GENERATED_KEY_BYTES)
    if kind is SourceKind.STANDARD_WEBHOOKS:
        return STANDARD_PREFIX + base64.b64encode(key).decode()
    return key.hex()


def signing_key(kind: SourceKind, secret: str) -> bytes:
    """The HMAC key of a secret; `InvalidRequest` naming `secret` when it cannot be one."""
    if kind is SourceKind.LAUNCHDARKLY_WEBHOOK:
        check_text(secret, "secret", limit=SECRET_LIMIT)
        if len(secret) < LD_SECRET_MIN:
            raise InvalidRequest(
                f"secret: must be at least {LD_SECRET_MIN} characters (leave it out to have "
                "one generated)"
            )
        return secret.encode()
    text = secret.removeprefix(STANDARD_PREFIX)
    try:
        # Padding may be left out, as the specification's libraries allow.
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(
            f"secret: must be {STANDARD_PREFIX} followed by base64 (leave it out to have one "
            "generated)"
        ) from None
    if not KEY_BYTES_MIN <= len(key) <= KEY_BYTES_MAX:
        raise InvalidRequest(
            f"secret: must hold {KEY_BYTES_MIN} to {KEY_BYTES_MAX} bytes, not {len(key)}"
        )
    return key


@dataclass(frozen=True, slots=True)
class NewSource:
    """A checked request for a source."""

    name: str
    kind: SourceKind
    secret: str


def parse_source(body: object) -> NewSource:
    """Check `{"name", "kind", "secret"?}`; a missing secret is generated."""
    if not isinstance(body, Mapping):
        raise InvalidRequest("body: must be a JSON object")
    unknown = sorted(set(body) - set(_KEYS))
    if unknown:
        raise InvalidRequest(f"{unknown[0]}: unknown field; known: {', '.join(_KEYS)}")
    for key in ("name", "kind"):
        if key not in body:
            raise InvalidRequest(f"{key}: required")
    name = check_text(body["name"], "name", limit=NAME_LIMIT).strip()
    if not name:
        raise InvalidRequest("name: must not be empty")
    try:
        kind = SourceKind(body["kind"])
    except (ValueError, TypeError):
        known = ", ".join(kind.value for kind in SourceKind)
        raise InvalidRequest(f"kind: must be one of {known}") from None
    secret = body.get("secret")
    if secret is None:
        secret = generate_secret(kind)
    elif not isinstance(secret, str):
        raise InvalidRequest("secret: must be a string")
    signing_key(kind, secret)
    return NewSource(name, kind, secret)


async def create(store: Store, box: SecretBox, body: object, *, now: int) -> tuple[SourceRow, str]:
    """Store a new source with its secret sealed; returns it and the secret (shown once)."""
    new = parse_source(body)
    row = await store.sources.create(
        name=new.name, kind=new.kind, secret=box.seal({_SEALED: new.secret}), now=now
    )
    return row, new.secret


def source_json(row: SourceRow, *, base_url: str, secret: str | None = None) -> dict[str, Any]:
    """A source as the API shows it: the secret masked, unless it was just created."""
    path = ingest_path(row.id)
    status: dict[str, Any] = {"eventsReceived": row.events_received}
    if row.last_event_at is not None:
        status["lastEventAt"] = row.last_event_at
    if row.last_event_id is not None:
        status["lastEventId"] = row.last_event_id
    return {
        "_links": {
            "self": {"href": f"/api/v2/sources/{row.id}", "type": "application/json"},
            "ingest": {"href": path},
        },
        "_id": row.id,
        "name": row.name,
        "kind": row.kind.value,
        "ingestUrl": base_url.rstrip("/") + path,
        "secret": SECRET_MASK if secret is None else secret,
        "creationDate": row.created_at,
        "_status": status,
    }


def verify(
    kind: SourceKind, key: bytes, headers: Mapping[str, str], body: bytes, *, now_ms: int
) -> None:
    """Raise `Unauthorized` unless `body` carries a valid signature of this kind under `key`.

    `headers` look names up without regard to case (Starlette's `Headers`); their values are
    the raw header bytes read as Latin-1, so `.encode("latin-1")` gives the bytes back.
    """
    if kind is SourceKind.LAUNCHDARKLY_WEBHOOK:
        _verify_launchdarkly(key, headers, body)
    else:
        _verify_standard(key, headers, body, now_ms=now_ms)


def _verify_launchdarkly(key: bytes, headers: Mapping[str, str], body: bytes) -> None:
    given = headers.get(LD_SIGNATURE, "").strip()
    if not given:
        raise Unauthorized(
            f"{LD_SIGNATURE}: required; this source takes LaunchDarkly webhooks signed with "
            "its secret"
        )
    expected = hmac.new(key, body, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(expected, given.lower().encode("latin-1")):
        raise Unauthorized(
            f"{LD_SIGNATURE}: does not match the body; check that the webhook is signed with "
            "this source's secret"
        )


def _verify_standard(key: bytes, headers: Mapping[str, str], body: bytes, *, now_ms: int) -> None:
    names = (WEBHOOK_ID, WEBHOOK_TIMESTAMP, WEBHOOK_SIGNATURE)
    values = [headers.get(name, "").strip() for name in names]
    missing = [name for name, value in zip(names, values, strict=True) if not value]
    if missing:
        raise Unauthorized(f"{', '.join(missing)}: required (Standard Webhooks headers)")
    message_id, timestamp, signatures = values
    if not _MESSAGE_ID.fullmatch(message_id):
        raise Unauthorized(f"{WEBHOOK_ID}: must be 1 to 256 visible ASCII characters")
    if not _SECONDS.fullmatch(timestamp):
        raise Unauthorized(f"{WEBHOOK_TIMESTAMP}: must be a time in Unix seconds")
    off = int(timestamp) - now_ms // 1000
    if abs(off) > TOLERANCE_SECONDS:
        when = "ahead of" if off > 0 else "behind"
        raise Unauthorized(
            f"{WEBHOOK_TIMESTAMP}: {abs(off)} s {when} pushgate's clock, more than the "
            f"{TOLERANCE_SECONDS} s allowed (a replayed message, or a clock that is off)"
        )
    signed = f"{message_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(expected, value.encode("latin-1")):
            return
    raise Unauthorized(
        f"{WEBHOOK_SIGNATURE}: no v1 signature matches; check that the sender signs with this "
        "source's secret"
    )


async def authenticate(
    store: Store,
    box: SecretBox,
    source_id: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now_ms: int,
) -> SourceRow:
    """The source a signed request is for: `NotFound` for an unknown id, `Unauthorized` for a
    missing or wrong signature (nothing is read from the body before this passes)."""
    row = await store.sources.get(source_id)
    key = signing_key(row.kind, box.open(row.secret)[_SEALED])
    verify(row.kind, key, headers, body, now_ms=now_ms)
    return row


def with_message_id(kind: SourceKind, body: object, headers: Mapping[str, str]) -> object:
    """A Standard Webhooks entry without `_id` takes the `webhook-id` (the sender's idempotency
    key, the same on every retry); everything else is left as it came."""
    if (
        kind is SourceKind.STANDARD_WEBHOOKS
        and isinstance(body, dict)
        and "items" not in body
        and "_id" not in body
    ):
        return {**body, "_id": headers.get(WEBHOOK_ID, "").strip()}
    return body
