"""Hostile and careless input: never a 500, the same answer on SQLite and PostgreSQL.

Each case goes to a real server over loopback, on both backends, and must get its status with
LaunchDarkly's `{"code", "message"}` body naming the field, with nothing stored. Then a bounded
property-based run throws generated JSON at every write endpoint and asserts no 5xx.
"""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Server, flag_event
from pushgate.limits import MAX_JSON_DEPTH

HOOK = "/api/v2/integrations/webhook"
EVENTS = "/api/v2/events"
TOKENS = "/api/v2/tokens"
LONE_SURROGATE = '"\\ud800"'  # JSON text for a string holding an unpaired surrogate


def raw_json(template: str, value: str) -> bytes:
    """A JSON body with `value` (JSON text, e.g. an escape) put in place of `@`."""
    return template.replace("@", value).encode()


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def valid_hook(**overrides: Any) -> dict[str, Any]:
    return {"name": "hook", "config": {"url": "https://example.com/h"}, **overrides}


async def stored_counts(server: Server) -> tuple[int, int, int]:
    configurations = await server.runtime.store.configurations.all()
    deliveries = await server.runtime.store.deliveries.counts()
    tokens = await server.runtime.store.tokens.all()
    return len(configurations), sum(deliveries.values()), len(tokens)


def assert_error(status: int, body: Any, expected: int, names: str) -> None:
    assert status == expected, body
    assert set(body) == {"code", "message"}, body
    assert names in body["message"], body


# (method, path, raw body, expected status, a fragment the message must hold)
CASES: list[tuple[str, str, bytes, int, str]] = [
    ("POST", EVENTS, b"[" * 1000 + b"]" * 1000, 400, "nested deeper"),
    ("POST", EVENTS, b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), 400, "nested"),
    ("POST", EVENTS, json.dumps(flag_event("deep", extra=nested(70))).encode(), 400, "body.extra"),
    (
        "POST",
        HOOK,
        raw_json('{"name": @, "config": {"url": "https://e.com/h"}}', LONE_SURROGATE),
        400,
        "body.name",
    ),
    ("POST", TOKENS, raw_json('{"name": @}', LONE_SURROGATE), 400, "body.name"),
    ("POST", EVENTS, raw_json('{"_id": @, "accesses": []}', LONE_SURROGATE), 400, "body._id"),
    (
        "POST",
        EVENTS,
        raw_json('{"accesses": [], "comment": @}', LONE_SURROGATE),
        400,
        "body.comment",
    ),
    ("POST", EVENTS, raw_json('{"accesses": [], @: 1}', LONE_SURROGATE), 400, "a key"),
    ("POST", EVENTS, raw_json('{"_id": @, "accesses": []}', '"a\\u0000b"'), 400, "body._id"),
    ("POST", EVENTS, raw_json('{"accesses": [], "title": @}', '"a\\u0000b"'), 400, "body.title"),
    (
        "POST",
        HOOK,
        raw_json('{"name": @, "config": {"url": "https://e.com/h"}}', '"a\\u0000"'),
        400,
        "name",
    ),
    ("POST", TOKENS, raw_json('{"name": @}', '"a\\u0000b"'), 400, "name"),
    ("POST", TOKENS, json.dumps({"name": "n" * 257}).encode(), 400, "name: must be at most 256"),
    ("POST", TOKENS, json.dumps({"name": "ok", "role": ["admin"]}).encode(), 400, "role"),
    ("POST", EVENTS, json.dumps({"_id": "i" * 65, "accesses": []}).encode(), 400, "body._id"),
    (
        "POST",
        EVENTS,
        json.dumps({"_id": "x" * 1_000_000, "accesses": []}).encode(),
        400,
        "body._id",
    ),
    ("POST", EVENTS, json.dumps({"_id": "has space", "accesses": []}).encode(), 400, "body._id"),
    ("POST", EVENTS, json.dumps({"kind": "k" * 65, "accesses": []}).encode(), 400, "body.kind"),
    (
        "POST",
        EVENTS,
        json.dumps({"accesses": [{"action": "a", "resource": "r"}] * 101}).encode(),
        400,
        "body.accesses",
    ),
    (
        "POST",
        EVENTS,
        json.dumps({"accesses": [{"action": "a" * 1025, "resource": "r"}]}).encode(),
        400,
        "body.accesses[0].action",
    ),
    ("POST", EVENTS, b'{"accesses": [], "n": NaN}', 400, "not valid JSON"),
    ("POST", EVENTS, b'{"accesses": [], "n": Infinity}', 400, "not valid JSON"),
    ("POST", EVENTS, b'{"accesses": [], "n": 1e400}', 400, "too large"),
    ("POST", EVENTS, b'{"accesses": [], "n": ' + b"9" * 5000 + b"}", 400, "not valid JSON"),
    ("POST", EVENTS, b'{"accesses": [], "date": 1180591620717411303424}', 400, "body.date"),
    ("POST", EVENTS, b"\xff\xfe{}", 400, "not valid JSON"),
    ("POST", HOOK, json.dumps(valid_hook(name="n" * 257)).encode(), 400, "name"),
    ("POST", HOOK, json.dumps(valid_hook(name="tab\there")).encode(), 400, "name"),
    (
        "POST",
        HOOK,
        json.dumps(valid_hook(tags=["t"] * 1 + [str(i) for i in range(64)])).encode(),
        400,
        "tags: at most 64",
    ),
    ("POST", HOOK, json.dumps(valid_hook(tags=["a,b"])).encode(), 400, "tags"),
    ("POST", HOOK, json.dumps(valid_hook(tags=["t" * 65])).encode(), 400, "tags"),
    (
        "POST",
        HOOK,
        json.dumps(valid_hook(config={"url": "https://e.com/" + "p" * 2048})).encode(),
        400,
        "config.url",
    ),
    (
        "POST",
        HOOK,
        json.dumps(valid_hook(config={"url": "https://e.com/\n"})).encode(),
        400,
        "config.url",
    ),
    (
        "POST",
        HOOK,
        json.dumps(valid_hook(config={"url": "https://u:p@e.com/"})).encode(),
        400,
        "config.url",
    ),
    (
        "POST",
        HOOK,
        json.dumps(valid_hook(config={"url": "https://e.com:99999/"})).encode(),
        400,
        "config.url",
    ),
    (
        "POST",
        HOOK,
        json.dumps(valid_hook(config={"url": "https://[::1/"})).encode(),
        400,
        "config.url",
    ),
    (
        "POST",
        HOOK,
        json.dumps(
            valid_hook(statements=[{"effect": "allow", "resources": ["*"], "actions": ["*"]}] * 101)
        ).encode(),
        400,
        "statements: at most 100",
    ),
    (
        "POST",
        HOOK,
        json.dumps(
            valid_hook(statements=[{"effect": "allow", "resources": ["x" * 513], "actions": ["*"]}])
        ).encode(),
        400,
        "statements[0].resources[0]",
    ),
    (
        "POST",
        "/api/v2/integrations/datadog",
        json.dumps({"name": "d", "config": {"apiKey": "short"}}).encode(),
        400,
        "config.apiKey",
    ),
    (
        "GET",
        HOOK + "/000000000000000000000000/errors?before=1180591620717411303424",
        b"",
        400,
        "before",
    ),
    ("GET", HOOK + "/000000000000000000000000/errors?before=-1", b"", 400, "before"),
    (
        "GET",
        HOOK + "/000000000000000000000000/errors?limit=99999999999999999999",
        b"",
        400,
        "limit",
    ),
    ("GET", HOOK + "/a%00b", b"", 404, "no webhook configuration"),
    ("GET", HOOK + "/a%00b/errors", b"", 404, "no webhook configuration"),
    ("DELETE", HOOK + "/" + "f" * 5000, b"", 404, "no webhook configuration"),
    ("PATCH", HOOK + "/a%00b", b"[]", 404, "no webhook configuration"),
    ("DELETE", TOKENS + "/a%00b", b"", 404, "no token"),
    ("GET", "/api/v2/integrations/we%00bhook", b"", 404, "unknown integration"),
]


@pytest.mark.parametrize(("method", "path", "raw", "expected", "names"), CASES)
async def test_hostile_input_is_answered_with_a_4xx_naming_the_field(
    server: Server, method: str, path: str, raw: bytes, expected: int, names: str
) -> None:
    before = await stored_counts(server)
    status, body = await server.call(method, path, raw=raw if raw else None)
    assert_error(status, body, expected, names)
    assert await stored_counts(server) == before


@pytest.mark.parametrize(
    ("operations", "names"),
    [
        ([{"op": "replace", "path": "/name", "value": "a\u0000b"}], "body[0].value"),
        ([{"op": "replace", "path": "/name", "value": "n" * 257}], "name"),
        ([{"op": "add", "path": "/tags/-", "value": "a,b"}], "tags"),
        ([{"op": "add", "path": "/tags/99999999999999999999", "value": "t"}], "body"),
        ([{"op": "replace", "path": "/config/url", "value": "http://0xa000001/"}], "config.url"),
        (
            [{"op": "replace", "path": "/config/url", "value": "https://other.example/********"}],
            "config.url",
        ),
        ([{"op": "move", "from": "/name", "path": "/name/x"}], "body"),
        ([{"op": 5, "path": "/name"}], "body"),
    ],
)
async def test_hostile_patches_are_refused_and_change_nothing(
    server: Server, operations: list[dict[str, Any]], names: str
) -> None:
    status, created = await server.call("POST", HOOK, valid_hook())
    assert status == 201
    path = f"{HOOK}/{created['_id']}"
    status, body = await server.call("PATCH", path, operations)
    assert_error(status, body, 400, names)
    _, unchanged = await server.call("GET", path)
    assert unchanged == created


async def test_a_lone_surrogate_in_a_patch_is_refused(server: Server) -> None:
    status, created = await server.call("POST", HOOK, valid_hook())
    assert status == 201
    raw = raw_json('[{"op": "replace", "path": "/name", "value": @}]', LONE_SURROGATE)
    status, body = await server.call("PATCH", f"{HOOK}/{created['_id']}", raw=raw)
    assert_error(status, body, 400, "body[0].value")


async def test_an_event_over_the_event_size_limit_rejects_the_batch(server: Server) -> None:
    limit = server.runtime.settings.event_size_limit
    small = flag_event("small")
    large = flag_event("large", description="d" * limit)
    status, body = await server.call("POST", EVENTS, {"items": [small, large]})
    assert_error(status, body, 400, "items[1]: ")
    assert f"more than the event size limit of {limit}" in body["message"]
    assert "PUSHGATE_EVENT_SIZE_LIMIT" in body["message"]
    assert sum((await server.runtime.store.deliveries.counts()).values()) == 0
    status, _ = await server.call("GET", "/api/v2/integrations/webhook")  # the server goes on
    assert status == 200


# --- the request size limit, enforced while the body streams in ------------------------------


async def raw_request(server: Server, head: bytes) -> tuple[asyncio.StreamReader, Any]:
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head)
    await writer.drain()
    return reader, writer


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    lines = head.decode().split("\r\n")
    length = next(
        int(line.split(":")[1]) for line in lines if line.lower().startswith("content-length")
    )
    return status, json.loads(await reader.readexactly(length))


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(
    server: Server,
) -> None:
    limit = server.runtime.settings.request_size_limit
    reader, writer = await raw_request(
        server,
        f"POST {EVENTS} HTTP/1.1\r\nHost: x\r\nAuthorization: {server.token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {100 * 1024 * 1024}\r\n\r\n".encode(),
    )
    async with asyncio.timeout(10):  # answered with none of the 100 MiB sent
        status, body = await read_answer(reader)
    writer.close()
    assert status == 413
    assert body["code"] == "request_too_large"
    assert str(limit) in body["message"]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_chunked_body_is_cut_off_as_soon_as_it_passes_the_limit(server: Server) -> None:
    limit = server.runtime.settings.request_size_limit
    chunk = b"x" * 65536
    reader, writer = await raw_request(
        server,
        f"POST {EVENTS} HTTP/1.1\r\nHost: x\r\nAuthorization: {server.token}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode(),
    )
    sent = 0
    while sent <= limit:  # just past the limit, then stop sending and wait for the answer
        writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        await writer.drain()
        sent += len(chunk)
    async with asyncio.timeout(10):  # the body never ends: only the limit can answer this
        status, body = await read_answer(reader)
    writer.close()
    assert status == 413
    assert body["code"] == "request_too_large"


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_body_just_under_the_limit_is_read(server: Server) -> None:
    limit = server.runtime.settings.request_size_limit
    event = json.dumps(flag_event("fits"))
    raw = (event[:-1] + " " * (limit - len(event)) + "}").encode()  # JSON whitespace
    assert len(raw) == limit
    headers = {"Authorization": server.token, "Content-Type": "application/json"}
    async with server.session.post(
        server.url + EVENTS, data=io.BytesIO(raw), headers=headers
    ) as answer:
        assert answer.status == 202, await answer.text()


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_sign_in_form_over_the_limit_is_413(server: Server) -> None:
    limit = server.runtime.settings.request_size_limit
    form = io.BytesIO(b"token=" + b"t" * limit)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with server.session.post(server.url + "/login", data=form, headers=headers) as answer:
        assert answer.status == 413


# --- property-based: generated bodies never give a 5xx -----------------------------------------

# Every string the JSON grammar can hold, with surrogates, NUL and other controls in the mix.
_TEXT = st.text(st.characters(exclude_categories=()), max_size=80) | st.sampled_from(
    ["", "\x00", "\ud800", "a" * 300, "proj/*:env/production:flag/*", "https://e.com/h", "*"]
)
_NUMBER = st.integers(min_value=-(2**80), max_value=2**80) | st.floats(
    allow_nan=False, allow_infinity=False
)
_JSON = st.recursive(
    st.none() | st.booleans() | _NUMBER | _TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_TEXT, inner, max_size=5),
    max_leaves=30,
)
_KEYS = st.sampled_from(
    [
        "_id",
        "kind",
        "name",
        "accesses",
        "date",
        "items",
        "config",
        "tags",
        "on",
        "statements",
        "role",
        "op",
        "path",
        "value",
        "url",
        "apiKey",
        "action",
        "resource",
        "secret",
    ]
)
_OBJECT = st.dictionaries(_KEYS | _TEXT, _JSON, max_size=6)
_BODY = (
    _JSON
    | _OBJECT
    | st.lists(_OBJECT, max_size=3)
    | st.fixed_dictionaries({"items": st.lists(_OBJECT, max_size=3)})
)
_TARGETS = st.sampled_from(
    [
        ("POST", EVENTS),
        ("POST", HOOK),
        ("POST", "/api/v2/integrations/datadog"),
        ("POST", "/api/v2/integrations/msteams"),
        ("POST", "/api/v2/integrations/appdynamics"),
        ("POST", TOKENS),
        ("POST", "/api/v2/sources"),
        ("PATCH", HOOK + "/{id}"),
    ]
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(target=_TARGETS, body=_BODY)
async def test_generated_bodies_never_get_a_server_error(
    server: Server, target: tuple[str, str], body: Any
) -> None:
    method, path = target
    if "{id}" in path:
        configurations = await server.runtime.store.configurations.all("webhook")
        if not configurations:
            status, _ = await server.call("POST", HOOK, valid_hook())
            assert status == 201
            configurations = await server.runtime.store.configurations.all("webhook")
        path = path.replace("{id}", configurations[0].id)
    raw = json.dumps(body, allow_nan=False).encode("utf-8", "surrogatepass")
    status, answer = await server.call(method, path, raw=raw)
    assert status < 500, (method, path, raw[:500], answer)
    if status >= 400:
        assert set(answer) == {"code", "message"}
