"""Elastic (ELK) Stack, against a local cluster that enforces the index-document contract."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

import pytest
from aiohttp import web

from conftest import Server
from integrations.conftest import FLAG_EVENT, PROJECT_EVENT, Attempt, VendorFactory
from pushgate.errors import InvalidRequest, PermanentDeliveryError, RetryableDeliveryError
from pushgate.integrations.elastic import Elastic, check_index_name


def encoded(key_id: str, secret: str) -> str:
    return base64.b64encode(f"{key_id}:{secret}".encode()).decode()


WRITER = encoded("VuaCfGcBCdbkQm-e5aOx", "ui2lp2axTNmsyakw9tvNnw")
READER = encoded("TiNAGG4BaaMdaH1tRfuU", "KnR6yE41RrSowb0kQ0HWoA")
# Fields an Elastic Common Schema mapping fixes the type of: a document that gives another
# type is refused, as a `logs-*` data stream refuses it.
KEYWORDS = ("event.id", "event.kind", "event.action", "user.email", "user.full_name", "url.full")


class FakeElasticsearch:
    """An Elasticsearch cluster with API keys, ECS-typed fields and optional auto-creation."""

    def __init__(self) -> None:
        self.keys = {WRITER: "write", READER: "read"}
        self.documents: dict[str, list[dict[str, Any]]] = {}
        self.ids: dict[str, set[str]] = {}
        self.auto_create = True
        self.overloaded = False

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_put("/{index}/_create/{id}", self.index_document)
        return app

    async def index_document(self, request: web.Request) -> web.Response:
        index = request.match_info["index"]
        authorization = request.headers.get("Authorization", "")
        scheme, _, credential = authorization.partition(" ")
        privilege = self.keys.get(credential) if scheme == "ApiKey" else None
        if privilege is None:
            return _error(
                401,
                "security_exception",
                "unable to authenticate with provided credentials and anonymous access is not "
                "allowed for this request",
                headers={"WWW-Authenticate": 'ApiKey, Basic realm="security", charset="UTF-8"'},
            )
        if privilege != "write":
            return _error(
                403,
                "security_exception",
                f"action [indices:data/write/index:op_type/create] is unauthorized for API key "
                f"on indices [{index}]",
            )
        if self.overloaded:
            return _error(429, "es_rejected_execution_exception", "rejected execution of write")
        try:
            check_index_name(index)
        except ValueError:
            return _error(400, "invalid_index_name_exception", f"Invalid index name [{index}]")
        if index not in self.documents and not self.auto_create:
            return _error(404, "index_not_found_exception", f"no such index [{index}]")
        if request.content_type != "application/json":
            return _error(406, "illegal_argument_exception", "unsupported Content-Type")
        try:
            document = json.loads(await request.read())
        except ValueError:
            return _error(400, "parse_exception", "request body is required")
        if problem := _mapping_problem(document):
            return _error(400, "document_parsing_exception", problem)
        stored = self.documents.setdefault(index, [])
        doc_id = request.match_info["id"]
        if doc_id in self.ids.setdefault(index, set()):
            return _error(
                409,
                "version_conflict_engine_exception",
                f"[{doc_id}]: version conflict, document already exists (current version [1])",
            )
        self.ids[index].add(doc_id)
        stored.append(document)
        answer = {
            "_index": index,
            "_id": doc_id,
            "_version": 1,
            "result": "created",
            "_shards": {"total": 2, "successful": 1, "failed": 0},
            "_seq_no": len(stored) - 1,
            "_primary_term": 1,
        }
        return web.json_response(answer, status=201)


def _mapping_problem(document: object) -> str | None:
    if not isinstance(document, dict):
        return "document must be an object"
    try:
        datetime.fromisoformat(document["@timestamp"])
    except (KeyError, TypeError, ValueError):
        return "failed to parse field [@timestamp] of type [date]"
    if not isinstance(document.get("message"), str):
        return "failed to parse field [message] of type [match_only_text]"
    tags = document.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        return "failed to parse field [tags] of type [keyword]"
    for path in KEYWORDS:
        parent, _, leaf = path.partition(".")
        holder = document.get(parent, {})
        if not isinstance(holder, dict):
            return f"object mapping for [{parent}] tried to parse field [{parent}] as object"
        if leaf in holder and not isinstance(holder[leaf], str):
            return f"failed to parse field [{path}] of type [keyword]"
    return None


def _error(
    status: int, kind: str, reason: str, headers: dict[str, str] | None = None
) -> web.Response:
    cause = {"type": kind, "reason": reason}
    body = {"error": {"root_cause": [cause], **cause}, "status": status}
    return web.json_response(body, status=status, headers=headers)


@pytest.fixture
def elastic() -> FakeElasticsearch:
    return FakeElasticsearch()


async def send(
    vendor: VendorFactory, fake: FakeElasticsearch, entry: dict[str, Any], **config: Any
) -> Any:
    url = await vendor(fake.app())
    settings = {"url": url, "token": WRITER, "index": "pushgate-audit", **config}
    return await Attempt(Elastic()).send(settings, entry)


async def test_flag_change_is_indexed_as_one_ecs_friendly_document(
    vendor: VendorFactory, elastic: FakeElasticsearch
) -> None:
    entry = {**FLAG_EVENT, "tags": ["checkout", "beta"], "description": "* Turned on the flag"}

    assert await send(vendor, elastic, entry) is None

    [document] = elastic.documents["pushgate-audit"]
    assert document == {
        "@timestamp": "2023-11-14T22:13:20.000Z",
        "date": "2023-11-14T22:13:20.000Z",
        "message": "Ana Lopez turned on the flag New checkout in Production",
        "event": {"id": "f1", "kind": "flag", "action": "updateOn"},
        "details": "- Turned on the flag",
        "comment": "Rolling out to everyone",
        "tags": ["checkout", "beta"],
        "target": {
            "kind": "flag",
            "key": "new-checkout",
            "name": "New checkout",
            "link": "https://app.example.com/web/production/features/new-checkout",
        },
        "project": {"key": "web", "name": "Web shop", "tags": []},
        "environment": {"key": "production", "name": "Production", "tags": []},
        "user": {"email": "ana@example.com", "full_name": "Ana Lopez"},
        "url": {"full": "https://app.example.com/web/production/features/new-checkout"},
    }


async def test_project_change_has_no_environment_and_no_link(
    vendor: VendorFactory, elastic: FakeElasticsearch
) -> None:
    assert await send(vendor, elastic, PROJECT_EVENT) is None

    [document] = elastic.documents["pushgate-audit"]
    assert document["message"] == "Bo renamed the project Web shop"
    assert document["event"] == {"id": "p1", "kind": "project", "action": "updateName"}
    assert document["project"] == {"key": "web", "name": "Web shop", "tags": []}
    assert "environment" not in document
    assert "url" not in document
    assert document["tags"] == []


async def test_validation_event_is_indexed(
    vendor: VendorFactory, elastic: FakeElasticsearch
) -> None:
    url = await vendor(elastic.app())
    config = {"url": url + "/", "token": WRITER, "index": "pushgate-audit"}

    assert await Attempt(Elastic()).validate(config) is None

    [document] = elastic.documents["pushgate-audit"]
    assert document["message"] == "pushgate connection test"
    assert document["event"]["action"] == "validateConnection"


async def test_rejected_api_key_is_permanent_and_names_token(
    vendor: VendorFactory, elastic: FakeElasticsearch
) -> None:
    failure = await send(vendor, elastic, FLAG_EVENT, token=encoded("gone", "invalidated"))

    assert isinstance(failure, PermanentDeliveryError)
    assert failure.status_code == 401
    assert json.loads(failure.response_body or "")["error"]["type"] == "security_exception"
    assert failure.hint is not None
    assert "token" in failure.hint


async def test_key_without_write_privilege_is_permanent_and_explains_the_privilege(
    vendor: VendorFactory, elastic: FakeElasticsearch
) -> None:
    failure = await send(vendor, elastic, FLAG_EVENT, token=READER)

    assert isinstance(failure, PermanentDeliveryError)
    assert failure.status_code == 403
    assert failure.hint is not None
    assert "create_doc" in failure.hint
    assert "index" in failure.hint


async def test_missing_index_without_auto_creation_names_index(
    vendor: VendorFactory, elastic: FakeElasticsearch
) -> None:
    elastic.auto_create = False

    failure = await send(vendor, elastic, FLAG_EVENT)

    assert isinstance(failure, PermanentDeliveryError)
    assert failure.status_code == 404
    assert failure.hint is not None
    assert "create index" in failure.hint


async def test_rejected_execution_is_retried(
    vendor: VendorFactory, elastic: FakeElasticsearch
) -> None:
    elastic.overloaded = True

    failure = await send(vendor, elastic, FLAG_EVENT)

    assert isinstance(failure, RetryableDeliveryError)
    assert failure.status_code == 429
    assert "es_rejected_execution_exception" in (failure.response_body or "")


def test_an_api_key_pasted_with_its_scheme_is_stored_without_it() -> None:
    config = Elastic().parse_config(
        {"url": "https://es.example.com:9243", "token": f"ApiKey {WRITER}", "index": "audit"}
    )

    assert config.token.get_secret_value() == WRITER


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"token": WRITER, "index": "audit"}, "config.url: Field required"),
        ({"url": "https://es.example.com", "index": "audit"}, "config.token: Field required"),
        ({"url": "https://es.example.com", "token": WRITER}, "config.index: Field required"),
        (
            {"url": "https://es.example.com", "token": "VuaCfGcB:ui2lp2ax", "index": "audit"},
            "config.token: Value error, use the encoded API key",
        ),
        (
            {"url": "https://es.example.com", "token": "not base64!", "index": "audit"},
            "config.token: Value error, must be the base64 encoded API key",
        ),
    ],
)
def test_config_errors_name_the_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        Elastic().parse_config(config)
    assert message in raised.value.message


@pytest.mark.parametrize(
    ("index", "problem"),
    [
        ("Audit", "must be lowercase"),
        ("audit log", "must not contain space"),
        ("audit/log", "must not contain /"),
        ("audit:log", "must not contain :"),
        ("a#b,c", "must not contain # ,"),
        ("_audit", "must not start with -, _ or +"),
        ("-audit", "must not start with -, _ or +"),
        ("..", "must not be . or .."),
        ("é" * 128, "must be at most 255 bytes long"),
    ],
)
def test_index_names_elasticsearch_refuses_are_refused_in_the_form(
    index: str, problem: str
) -> None:
    config = {"url": "https://es.example.com", "token": WRITER, "index": index}

    with pytest.raises(InvalidRequest) as raised:
        Elastic().parse_config(config)

    assert raised.value.message == f"config.index: Value error, {problem}"


@pytest.mark.parametrize("index", ["pushgate-audit", "logs-pushgate-default", ".hidden", "a.b_c+d"])
def test_valid_index_names_are_accepted(index: str) -> None:
    config = {"url": "https://es.example.com", "token": WRITER, "index": index}

    assert Elastic().parse_config(config).index == index


async def test_launchdarkly_api_creates_a_configuration_with_the_secret_masked(
    server: Server,
) -> None:
    body = {
        "name": "elastic",
        "on": True,
        "config": {"url": "https://es.example.com:9243", "token": WRITER, "index": "audit"},
    }

    status, created = await server.call("POST", "/api/v2/integrations/elastic", body)

    assert status == 201, created
    assert created["config"] == {
        "url": "https://es.example.com:9243",
        "token": "********",
        "index": "audit",
    }


async def test_a_redelivered_event_is_indexed_once_and_counts_as_delivered(
    vendor: VendorFactory,
) -> None:
    elastic = FakeElasticsearch()
    url = await vendor(elastic.app())
    config = {"url": url, "token": WRITER, "index": "pushgate-audit"}
    assert await Attempt(Elastic()).send(config, FLAG_EVENT) is None
    assert await Attempt(Elastic()).send(config, FLAG_EVENT) is None  # e.g. after a timeout
    assert len(elastic.documents["pushgate-audit"]) == 1
