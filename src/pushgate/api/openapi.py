"""The API's OpenAPI document: complete enough for a client generator, and true to the behaviour.

FastAPI writes the document from the routes. pushgate validates requests itself (LaunchDarkly's
400 messages, `limits.parse_json` first), so the routes read the raw request and FastAPI cannot
see their bodies or answers. What it cannot see, the routes tell it here:

- `request_body(Model)` describes a body in `openapi_extra` without FastAPI parsing it;
- `answers(...)` names the success model and the `{"code", "message"}` error of every status
  the operation can answer (`responses=` documents, it does not serialize);
- `deps.API_KEY` makes the `ApiKey` security scheme (LaunchDarkly's name for it) on every
  operation that takes a token.

`document(app)` then finishes the document: it hoists the request models into
`components.schemas`, and removes the 422 that FastAPI adds to every operation with
parameters (pushgate answers 400, never 422). `tests/test_openapi.py` holds the document to
these rules, and every answer the API tests record is checked against it (`tests/conftest.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

REF = "#/components/schemas/{model}"
# Where a route's request models wait until `document` hoists them into the components.
_MODELS_KEY = "x-pushgate-models"
# What FastAPI adds for its own request validation, which pushgate does not use.
_FASTAPI_422 = "422"
_FASTAPI_SCHEMAS = ("HTTPValidationError", "ValidationError")


def _absent_not_null(schema: dict[str, Any], _model: type[Any]) -> None:
    """`x: T | None = None` is a member that is absent when unknown: describe it as an
    optional T, not as "T or null" (pushgate never answers null, as LaunchDarkly's `_status`)."""
    for member in schema.get("properties", {}).values():
        if "default" in member and member["default"] is None:
            del member["default"]
        choices = member.get("anyOf")
        if choices is None or {"type": "null"} not in choices:
            continue
        rest = [choice for choice in choices if choice != {"type": "null"}]
        if len(rest) == 1:
            del member["anyOf"]
            member.update(rest[0])
        else:
            member["anyOf"] = rest


class Shape(BaseModel):
    """A JSON object of the API, as documented: members it does not list are refused in
    answers (`additionalProperties: false`), optional members are absent, never null."""

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, json_schema_extra=_absent_not_null
    )


class Error(Shape):
    """LaunchDarkly's error body."""

    code: str = Field(
        description=(
            "`invalid_request`, `unauthorized`, `forbidden`, `not_found`, "
            "`method_not_allowed`, `optimistic_locking_error`, `request_too_large`, "
            "`rate_limited`, `internal_server_error` or `service_unavailable`"
        ),
        examples=["invalid_request"],
    )
    message: str = Field(description="What is wrong, naming the field", examples=["name: required"])


ERRORS: dict[int, str] = {
    400: "The body, a parameter or a field is invalid; `message` names it (`invalid_request`).",
    401: "No access token, or one that is not valid (`unauthorized`).",
    403: "The token's role does not allow this call (`forbidden`).",
    404: "No such integration, configuration, token or source (`not_found`).",
    409: "The configuration changed meanwhile, or a JSON Patch `test` failed "
    "(`optimistic_locking_error`).",
    413: "The body is larger than PUSHGATE_REQUEST_SIZE_LIMIT (`request_too_large`); the rest "
    "of it was not read.",
    429: "Too many wrong access tokens from this address: wait `Retry-After` seconds "
    "(`rate_limited`).",
    500: "An unexpected error; it was logged (`internal_server_error`).",
    503: "The database cannot be reached; nothing was stored. Try again after `Retry-After` "
    "seconds (`service_unavailable`).",
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer"},
    }
}
# What every call that needs a token and reaches the database can answer besides its own.
AUTHENTICATED = frozenset({401, 429, 500, 503})


def answers(
    status: int,
    model: type[BaseModel] | None,
    description: str,
    *,
    errors: Iterable[int],
) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: its success answer (`model`, or no body when None) and the
    error body on each of `errors` (with `Retry-After` on 429 and 503)."""
    documented: dict[int | str, dict[str, Any]] = {status: {"description": description}}
    if model is not None:
        documented[status]["model"] = model
    for error in sorted(set(errors)):
        documented[error] = {"model": Error, "description": ERRORS[error]}
        if error in (429, 503):
            documented[error]["headers"] = _RETRY_AFTER
    return documented


def request_body(
    model: type[BaseModel],
    *,
    description: str,
    example: Any,
    required: bool = True,
    array: bool = False,
) -> dict[str, Any]:
    """`openapi_extra=` that describes a JSON body (an array of `model` when `array`) without
    FastAPI reading it: the route parses it with pushgate's own rules. `example` fills the body
    of "Try it out" in the docs page, so it is a body the route accepts."""
    schema: dict[str, Any] = model.model_json_schema(ref_template=REF)
    definitions = schema.pop("$defs", {})
    reference: dict[str, Any] = {"$ref": REF.format(model=model.__name__)}
    return {
        "requestBody": {
            "description": description,
            "required": required,
            "content": {
                "application/json": {
                    "schema": {"type": "array", "items": reference} if array else reference,
                    "example": example,
                }
            },
        },
        _MODELS_KEY: {model.__name__: schema, **definitions},
    }


def document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, built once (FastAPI's `app.openapi` contract)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    spec = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
        separate_input_output_schemas=False,
    )
    schemas: dict[str, Any] = spec.setdefault("components", {}).setdefault("schemas", {})
    for operations in spec["paths"].values():
        for operation in operations.values():
            operation["responses"].pop(_FASTAPI_422, None)
            for parameter in operation.get("parameters", []):
                _absent_not_null({"properties": {"_": parameter["schema"]}}, object)
            for name, schema in operation.pop(_MODELS_KEY, {}).items():
                if schemas.setdefault(name, schema) != schema:
                    raise ValueError(f"two different schemas are named {name}")
    for name in _FASTAPI_SCHEMAS:
        schemas.pop(name, None)
    app.openapi_schema = spec
    return spec
