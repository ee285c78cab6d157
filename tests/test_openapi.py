"""The OpenAPI document is complete enough for a client generator, and the docs page works offline.

Every answer the other API tests record is also checked against the document (`contract.py`,
at the end of each test server); the tests here hold the document itself to its rules.
"""

from __future__ import annotations

import functools
import re
from typing import Any, get_args

import jsonschema
import pytest
from openapi_spec_validator import validate as validate_spec

from conftest import Server
from pushgate.api import shapes
from pushgate.api.docs import ASSETS, POLICY
from pushgate.app import create_app
from pushgate.domain import HealthState, Role, SourceKind
from pushgate.settings import Settings

LAUNCHDARKLY_OPERATIONS = {
    ("get", "/api/v2/integrations/{integrationKey}"): "getSubscriptions",
    ("post", "/api/v2/integrations/{integrationKey}"): "createSubscription",
    ("get", "/api/v2/integrations/{integrationKey}/{id}"): "getSubscriptionByID",
    ("patch", "/api/v2/integrations/{integrationKey}/{id}"): "updateSubscription",
    ("delete", "/api/v2/integrations/{integrationKey}/{id}"): "deleteSubscription",
}
# Operations that take no access token.
OPEN = {"/healthz", "/readyz", "/metrics", "/ingest/{id}"}
PLAIN_ID = re.compile(r"[a-z][A-Za-z]+")


@functools.cache
def document() -> dict[str, Any]:
    # Describing needs no database: the app is built, not started.
    spec: dict[str, Any] = create_app(Settings(data_dir="unused")).openapi()
    return spec


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, methods in document()["paths"].items()
        for method, operation in methods.items()
    ]


def resolve(reference: dict[str, Any]) -> dict[str, Any]:
    name = reference["$ref"].removeprefix("#/components/schemas/")
    schema: dict[str, Any] = document()["components"]["schemas"][name]
    return schema


def test_the_document_is_valid_openapi() -> None:
    validate_spec(document())


def test_launchdarkly_operations_keep_launchdarkly_ids() -> None:
    found = {(method, path): op["operationId"] for method, path, op in operations()}
    for key, operation_id in LAUNCHDARKLY_OPERATIONS.items():
        assert found[key] == operation_id


def test_every_operation_has_a_plain_unique_id_a_tag_and_a_summary() -> None:
    ids = [op["operationId"] for _, _, op in operations()]
    assert len(ids) == len(set(ids))
    for method, path, operation in operations():
        assert PLAIN_ID.fullmatch(operation["operationId"]), (method, path)
        assert operation["tags"], (method, path)
        assert operation["summary"], (method, path)
    assert len(ids) >= 22  # every route is described (paths are not silently dropped)


def test_no_operation_documents_a_422() -> None:
    for method, path, operation in operations():
        assert "422" not in operation["responses"], (method, path)
    assert "HTTPValidationError" not in document()["components"]["schemas"]


def test_every_body_is_described_with_an_example_that_fits_it() -> None:
    schemas = document()["components"]["schemas"]
    for method, path, operation in operations():
        body = operation.get("requestBody")
        if method in ("get", "delete"):
            assert body is None, (method, path)
            continue
        assert body is not None, (method, path)
        media = body["content"]["application/json"]
        schema = media["schema"]
        assert "$ref" in schema or "$ref" in schema["items"]
        # The example is what "Try it out" sends: it must be a valid body.
        validator = jsonschema.Draft202012Validator({**schema, "components": {"schemas": schemas}})
        validator.validate(media["example"])


def test_every_success_answer_has_its_schema() -> None:
    for method, path, operation in operations():
        successes = {code: a for code, a in operation["responses"].items() if code.startswith("2")}
        assert len(successes) == 1, (method, path)
        code, answer = next(iter(successes.items()))
        if code == "204":
            assert "content" not in answer
            continue
        (media_type, content), *_ = answer["content"].items()
        if path == "/metrics":
            assert media_type == "text/plain"
            continue
        assert media_type == "application/json", (method, path)
        assert "properties" in resolve(content["schema"]), (method, path)


def test_every_error_answer_is_the_error_body_with_the_statuses_it_can_have() -> None:
    for method, path, operation in operations():
        responses = operation["responses"]
        errors = {int(code) for code in responses if code[0] in "45"}
        if path in ("/healthz", "/metrics"):
            assert errors == set()
            continue
        if path == "/readyz":
            assert errors == {503}
            continue
        expected = {500, 503}
        if path not in OPEN:
            expected |= {401, 429}
        if "{" in path:
            expected.add(404)
        if "requestBody" in operation:
            expected |= {400, 413}
        if path == "/ingest/{id}":
            expected.add(401)  # a missing or wrong signature
        assert expected <= errors, (method, path, expected - errors)
        for code in errors:
            content = responses[str(code)]["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/Error"}, (method, path)
        for code in {429, 503} & errors:
            assert "Retry-After" in responses[str(code)]["headers"]
    assert document()["components"]["schemas"]["Error"]["required"] == ["code", "message"]


def test_calls_that_need_more_than_a_reader_document_403() -> None:
    readers = {"getSubscriptions", "getSubscriptionByID", "getSubscriptionErrors"}
    readers |= {"getIntegrationManifests", "getSubscriptionAttempts"}
    for _method, path, operation in operations():
        if path in OPEN:
            continue
        documented = "403" in operation["responses"]
        assert documented == (operation["operationId"] not in readers), operation["operationId"]


def test_the_token_is_an_api_key_in_the_authorization_header() -> None:
    schemes = document()["components"]["securitySchemes"]
    assert schemes == {
        "ApiKey": {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": schemes["ApiKey"]["description"],
        }
    }
    for _method, path, operation in operations():
        assert ("security" in operation) == (path not in OPEN), path
        if path not in OPEN:
            assert operation["security"] == [{"ApiKey": []}]


def test_every_reference_resolves() -> None:
    schemas = document()["components"]["schemas"]
    text = repr(document())
    for name in re.findall(r"#/components/schemas/([A-Za-z0-9_.-]+)", text):
        assert name in schemas, name


def test_optional_members_are_absent_never_null() -> None:
    assert "'null'" not in repr(document())  # schemas and parameters alike


@pytest.mark.parametrize(
    ("literal", "values"),
    [
        (shapes.HealthName, {state.value for state in HealthState}),
        (shapes.RoleName, {role.value for role in Role}),
        (shapes.SourceKindName, {kind.value for kind in SourceKind}),
    ],
)
def test_described_enums_are_the_domain_enums(literal: Any, values: set[str]) -> None:
    assert set(get_args(literal)) == values


async def test_a_wrong_method_is_405_with_every_allowed_method(server: Server) -> None:
    status, body = await server.call("PUT", "/api/v2/tokens")
    assert status == 405
    assert body["code"] == "method_not_allowed"
    async with server.session.put(
        server.url + "/api/v2/tokens", headers={"Authorization": server.token}
    ) as answer:
        assert answer.headers["Allow"] == "GET, POST"
    async with server.session.post(server.url + "/api/v2/integrations/webhook/x/errors") as answer:
        assert answer.status == 405
        assert answer.headers["Allow"] == "GET"


async def test_the_docs_page_is_served_from_the_package_under_its_own_policy(
    server: Server,
) -> None:
    async with server.session.get(server.url + "/api/docs") as answer:
        page = await answer.text()
        assert answer.headers["Content-Security-Policy"] == POLICY
    assert "<script>" not in page  # no inline script: the policy allows none
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(sources) == 4  # icon, stylesheet, Swagger UI, the starter
    assert all(s.startswith("/") and not s.startswith("//") for s in sources)
    for name, media_type in ASSETS.items():
        async with server.session.get(f"{server.url}/api/docs/{name}") as asset:
            assert asset.status == 200
            assert asset.headers["Content-Type"].startswith(media_type)
            assert len(await asset.read()) > 100_000  # Swagger UI itself, not a placeholder
    async with server.session.get(server.url + "/api/docs/favicon.png") as other:
        assert other.status == 404  # only the files the page uses
    async with server.session.get(server.url + "/api/redoc") as redoc:
        assert redoc.status == 404  # documented as absent (docs/api.md)


@pytest.mark.parametrize(
    ("operation_id", "path"),
    [
        ("createSubscription", "/api/v2/integrations/webhook"),
        ("postEvents", "/api/v2/events"),
        ("createToken", "/api/v2/tokens"),
        ("createSource", "/api/v2/sources"),
    ],
)
async def test_the_example_bodies_are_accepted(
    server: Server, operation_id: str, path: str
) -> None:
    operation = next(op for _, _, op in operations() if op["operationId"] == operation_id)
    example = operation["requestBody"]["content"]["application/json"]["example"]
    status, body = await server.call("POST", path, example)
    assert 200 <= status < 300, body
