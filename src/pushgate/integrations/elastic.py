"""Elastic (ELK) Stack: each event as one document, `PUT {url}/{index}/_create/{event id}`.

The event id is the document id, so a delivery repeated after a lost answer (at-least-once)
cannot index the event twice: Elasticsearch answers 409, which counts as delivered.

Auth is an Elasticsearch API key: `Authorization: ApiKey <encoded>`, where `encoded` is the
base64 of `id:api_key` that the create-API-key call (and Kibana) hands out. Elasticsearch answers
201 when the document was created and 200 when it overwrote one; errors carry
`{"error": {"type", "reason", ...}, "status": n}`.

The document keeps the field names of LaunchDarkly's Elastic template where they fit the Elastic
Common Schema (`@timestamp`, `message`, `event.kind`, `event.action`, `tags` as a real array),
so existing dashboards keep working and ECS-mapped indices (such as `logs-*` data streams) accept
it: `user` holds `email` and `full_name`, and the link is `url.full`.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import Field, SecretStr, field_validator

from pushgate.errors import PermanentDeliveryError
from pushgate.events import EventContext
from pushgate.integrations.base import (
    JSON_HEADERS,
    Endpoints,
    InboundResponse,
    Integration,
    IntegrationConfig,
    OutboundRequest,
    check_http_url,
    classify_status,
)

# Elasticsearch refuses longer index names (counted in UTF-8 bytes).
INDEX_NAME_MAX_BYTES = 255
INDEX_FORBIDDEN_CHARACTERS = frozenset('\\/*?"<>| ,#:')
INDEX_FORBIDDEN_STARTS = ("-", "_", "+")
# Elasticsearch answers this when a document with the same id exists already.
CONFLICT = 409


class ElasticConfig(IntegrationConfig):
    """Elasticsearch endpoint, API key and target index."""

    url: str = Field(
        title="Elasticsearch endpoint",
        description="The URL of your Elasticsearch endpoint, including the port.",
        json_schema_extra={
            "placeholder": "https://my-deployment.es.us-east-1.aws.found.io:9243",
            "format": "uri",
        },
    )
    token: SecretStr = Field(
        title="API key",
        description=(
            "The encoded value of an Elasticsearch API key (base64 of id:api_key) allowed to "
            "write documents to the index."
        ),
        json_schema_extra={"placeholder": "VnVhQ2ZHY0JDZGJrU…"},
    )
    index: str = Field(
        title="Index",
        description=(
            'The index or data stream the documents go to: lowercase, no spaces or \\ / * ? " '
            "< > | , # :, not starting with - _ +."
        ),
        json_schema_extra={"placeholder": "pushgate-audit"},
    )

    _check_url = field_validator("url")(check_http_url)

    @field_validator("token")
    @classmethod
    def _check_token(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value().strip()
        if token.lower().startswith("apikey "):
            token = token[len("apikey ") :].strip()
        if not token:
            raise ValueError("must not be empty")
        if ":" in token:
            # The base64 alphabet has no colon: this is the raw id:api_key pair.
            raise ValueError("use the encoded API key (base64 of id:api_key), not id:api_key")
        try:
            base64.b64decode(token, validate=True)
        except binascii.Error:
            raise ValueError("must be the base64 encoded API key") from None
        return SecretStr(token)

    @field_validator("index")
    @classmethod
    def _check_index(cls, value: str) -> str:
        check_index_name(value)
        return value


def check_index_name(name: str) -> None:
    """Raise ValueError when Elasticsearch would refuse `name` as an index or data stream name."""
    if not name:
        raise ValueError("must not be empty")
    if name != name.lower():
        raise ValueError("must be lowercase")
    if bad := sorted(set(name) & INDEX_FORBIDDEN_CHARACTERS):
        shown = " ".join("space" if char == " " else char for char in bad)
        raise ValueError(f"must not contain {shown}")
    if name.startswith(INDEX_FORBIDDEN_STARTS):
        raise ValueError("must not start with -, _ or +")
    if name in (".", ".."):
        raise ValueError("must not be . or ..")
    if len(name.encode()) > INDEX_NAME_MAX_BYTES:
        raise ValueError(f"must be at most {INDEX_NAME_MAX_BYTES} bytes long")


class Elastic(Integration[ElasticConfig]):
    """Each event becomes one document in an Elasticsearch index."""

    key: ClassVar[str] = "elastic"
    name: ClassVar[str] = "Elastic (ELK) Stack"
    description: ClassVar[str] = "Index every change as a document in Elasticsearch, for Kibana."
    config_model = ElasticConfig
    auth_hint: ClassVar[str] = (
        "Elasticsearch refused the API key: check token (the encoded API key, base64 of "
        "id:api_key) and that it was not invalidated or expired."
    )

    def build_request(
        self, event: EventContext, config: ElasticConfig, endpoints: Endpoints
    ) -> OutboundRequest:
        index, doc_id = quote(config.index, safe=""), quote(event.id, safe="")
        url = f"{config.url.rstrip('/')}/{index}/_create/{doc_id}"
        headers = {**JSON_HEADERS, "Authorization": f"ApiKey {config.token.get_secret_value()}"}
        return OutboundRequest("PUT", url, headers, json.dumps(document(event)).encode())

    def classify(self, response: InboundResponse) -> None:
        """The common reading, with hints for Elasticsearch's privilege and index errors.

        A 409 version conflict means a document with this event's id is already in the index:
        an earlier attempt got through (its answer was lost), so this one succeeded too.
        """
        if (
            response.status == CONFLICT
            and _error_type(response) == "version_conflict_engine_exception"
        ):
            return
        try:
            classify_status(response, auth_hint=self.auth_hint)
        except PermanentDeliveryError as error:
            error.hint = _hint(response) or error.hint
            raise


def document(event: EventContext) -> dict[str, Any]:
    """The document indexed for `event`; absent values are left out."""
    project = event.project
    environment = event.environment
    doc: dict[str, Any] = {
        "@timestamp": event.rfc3339,
        "date": event.rfc3339,
        "message": event.title,
        "event": {"id": event.id, "kind": event.kind, "action": event.action},
        "details": event.details or None,
        "comment": event.comment,
        "tags": list(event.tags),
        "target": {"kind": event.kind, "key": event.key, "name": event.name, "link": event.url},
        "project": _named(project.key, project.name, project.tags) if project else None,
        "environment": (
            _named(environment.key, environment.name, environment.tags) if environment else None
        ),
        "user": (
            {"email": event.member.email, "full_name": event.member.display_name}
            if event.member
            else None
        ),
        "url": {"full": event.url} if event.url else None,
    }
    return _without_empty(doc)


def _named(key: str, name: str, tags: tuple[str, ...]) -> dict[str, Any]:
    return {"key": key, "name": name, "tags": list(tags)}


def _without_empty(value: dict[str, Any]) -> dict[str, Any]:
    """Drop None values and empty objects, recursively; empty lists stay (`tags: []`)."""
    out = {}
    for key, item in value.items():
        if isinstance(item, dict):
            item = _without_empty(item)
            if not item:
                continue
        if item is not None:
            out[key] = item
    return out


def _error_type(response: InboundResponse) -> str | None:
    answer = response.json()
    error = answer.get("error") if isinstance(answer, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    return kind if isinstance(kind, str) else None


def _hint(response: InboundResponse) -> str | None:
    """A hint from Elasticsearch's error type for the errors people can fix in the form."""
    kind = _error_type(response)
    if response.status == 403:
        return (
            "The API key in token may not write to index: give it the create_doc (or index) "
            "privilege on that index, plus auto_configure if the index is created on first use."
        )
    if response.status == 404 or kind == "index_not_found_exception":
        return (
            "The index does not exist and Elasticsearch does not create it automatically: "
            "create index, or check url points at Elasticsearch (not Kibana)."
        )
    if kind in ("mapper_parsing_exception", "document_parsing_exception"):
        return (
            "The index's mapping does not fit pushgate's documents: use an index of its own, "
            "or one without conflicting fields."
        )
    if kind == "invalid_index_name_exception":
        return "Elasticsearch refused the index name: check index."
    return None
