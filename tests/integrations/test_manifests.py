"""Manifest integrations through the real engine and transport, against a local receiver.

`tests/manifests/changeboard` is a manifest of our own for an in-house change calendar (the
worked example of docs/manifests.md); smaller manifests are written per test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import Receiver
from pushgate.clock import ManualClock
from pushgate.delivery.engine import Engine
from pushgate.delivery.transport import Transport
from pushgate.errors import (
    BlockedTarget,
    DeliverySkipped,
    InvalidRequest,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from pushgate.events import parse_entry
from pushgate.integrations.base import Endpoints, Integration
from pushgate.integrations.manifest import ManifestIntegration
from pushgate.integrations.manifest_loader import load_manifest
from pushgate.settings import Settings
from pushgate.validation import SKIPPED_HINT, validate

from .conftest import FLAG_EVENT, PROJECT_EVENT, Attempt

CHANGEBOARD = Path(__file__).resolve().parents[1] / "manifests" / "changeboard"
TOKEN = "cb-token-0123456789"
SIGNING = "changeboard-signing-secret"


def changeboard() -> ManifestIntegration:
    return load_manifest(CHANGEBOARD)


def config(receiver: Receiver, **extra: Any) -> dict[str, Any]:
    return {"baseUrl": receiver.url, "apiToken": TOKEN, "board": "ops team", **extra}


def write_manifest(
    folder: Path,
    *,
    templates: dict[str, tuple[str, str]] | None = None,
    variables: list[dict[str, Any]] | None = None,
    **hook: Any,
) -> Path:
    """A small manifest in `folder`: `templates` maps kind → (file name, source)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "templates").mkdir(exist_ok=True)
    paths = {}
    for kind, (name, source) in (templates or {}).items():
        (folder / "templates" / name).write_text(source)
        paths[kind] = f"templates/{name}"
    endpoint = {"url": "{{url}}", "method": "POST", "headers": []}
    endpoint.update(hook.pop("endpoint", {}))
    manifest = {
        "name": "Little tool",
        "formVariables": variables
        if variables is not None
        else [{"key": "url", "name": "URL", "type": "uri", "description": "Where to post."}],
        "capabilities": {"auditLogEventsHook": {"endpoint": endpoint, "templates": paths, **hook}},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


async def test_flag_event_renders_url_headers_and_body_from_the_manifest(
    receiver: Receiver,
) -> None:
    entry = {
        **FLAG_EVENT,
        "tags": ["checkout", "web"],
        "customProperties": {"team": {"name": "Team", "values": ["payments", "growth"]}},
    }

    failure = await Attempt(changeboard()).send(config(receiver, severity="notice"), entry)

    assert failure is None
    [sent] = receiver.requests
    assert sent.path == "/api/boards/ops team/changes"  # pathEncode: %20 on the wire
    assert sent.query == {"severity": "notice"}
    assert (
        sent.headers["Authorization"]
        == "Basic " + base64.b64encode(f"pushgate:{TOKEN}".encode()).decode()
    )
    assert sent.headers["X-Change-Kind"] == "flag"
    assert sent.headers["Content-Type"] == "application/json"
    assert "X-Changeboard-Signature" not in sent.headers  # no signing secret configured
    assert sent.json() == {
        "title": "Ana Lopez turned on the flag New checkout in Production",
        "flag": "new-checkout",
        "project": "web",
        "environment": {"key": "production", "name": "Production"},
        "action": "updateOn",
        "state": "on",
        "tags": ["checkout", "web"],
        "teams": ["payments", "growth"],
        "by": "Ana Lopez",
        "comment": "Rolling out to everyone",
        "details": "",
        "link": "https://app.example.com/web/production/features/new-checkout",
        "at": 1_700_000_000_000,
        "local": "2023-11-14T22:13:20.000Z",
    }


async def test_whitespace_control_and_each_last_leave_no_stray_commas(
    receiver: Receiver,
) -> None:
    await Attempt(changeboard()).send(config(receiver), {**FLAG_EVENT, "tags": ["solo"]})

    text = receiver.requests[0].body.decode()
    assert '"tags": ["solo"]' in text
    assert '"teams": []' in text  # {{~#each~}} over nothing leaves nothing, not a newline


@pytest.mark.parametrize(
    ("action", "state"), [("updateOn", "on"), ("updateOff", "off"), ("updateRules", "changed")]
)
async def test_equal_and_equal_with_else_choose_the_branch(
    receiver: Receiver, action: str, state: str
) -> None:
    entry = {**FLAG_EVENT, "accesses": [{**FLAG_EVENT["accesses"][0], "action": action}]}

    await Attempt(changeboard()).send(config(receiver), entry)

    assert receiver.requests[0].json()["state"] == state


async def test_boolean_and_string_form_variables_reach_the_body(receiver: Receiver) -> None:
    await Attempt(changeboard()).send(config(receiver, quiet=True, utcOffset="-3600"), FLAG_EVENT)

    body = receiver.requests[0].json()
    assert body["title"] == "Someone turned on the flag New checkout"
    assert "by" not in body
    assert body["local"] == "2023-11-14T21:13:20.000Z"  # formatWithOffset, one hour west


async def test_every_string_is_json_escaped_in_json_templates(receiver: Receiver) -> None:
    hostile = 'Say "hi" \\ then\nnew line\t</script> {{x}} ü'
    entry = {**FLAG_EVENT, "comment": hostile, "tags": ['a"b'], "name": 'Flag "X"'}
    entry.pop("title")

    assert await Attempt(changeboard()).send(config(receiver), entry) is None

    body = receiver.requests[0].json()
    assert body["comment"] == hostile
    assert body["tags"] == ['a"b']
    assert body["title"] == 'Ana Lopez turned on the flag Flag "X" in Production'


async def test_kind_selects_the_template_else_default(receiver: Receiver) -> None:
    environment_event = {
        "_id": "env1",
        "kind": "environment",
        "name": "Staging",
        "accesses": [{"action": "updateColor", "resource": "proj/web:env/staging"}],
    }
    member_event = {
        "_id": "m1",
        "kind": "member",
        "name": "Bo",
        "titleVerb": "changed the role of",
        "accesses": [{"action": "updateRole", "resource": "member/61"}],
        "member": {"email": "bo.berg@example.com", "firstName": "Bo"},
    }
    renamed_project = {**PROJECT_EVENT, "_id": "p2"}
    attempt = Attempt(changeboard())

    for entry in (environment_event, member_event, renamed_project):
        assert await attempt.send(config(receiver), entry) is None

    environment, member, project = (request.json() for request in receiver.requests)
    assert environment == {
        "title": "Someone updateColor Staging",
        "kind": "environment",
        "project": "web",
        "environment": "staging",
        "at": 1_700_000_000,
    }
    assert member["member"] == "bo.berg"  # member.json.hbs, emailLocalPart
    assert project == {
        "title": "Bo renamed the project Web shop",
        "project": "web",
        "at": 1_700_000_000,
    }


async def test_a_template_that_renders_nothing_skips_the_delivery(receiver: Receiver) -> None:
    created = {**PROJECT_EVENT, "accesses": [{"action": "createProject", "resource": "proj/web"}]}

    with pytest.raises(DeliverySkipped, match="project template rendered nothing"):
        await Attempt(changeboard()).send(config(receiver), created)

    assert receiver.requests == []


async def test_an_event_kind_without_template_or_default_is_skipped(
    receiver: Receiver, tmp_path: Path
) -> None:
    folder = write_manifest(tmp_path / "flags-only", templates={"flag": ("f.json", "{}")})

    with pytest.raises(DeliverySkipped, match="no template for project events"):
        await Attempt(load_manifest(folder)).send({"url": receiver.url}, PROJECT_EVENT)


async def test_validation_uses_the_validation_template(receiver: Receiver) -> None:
    assert await Attempt(changeboard()).validate(config(receiver)) is None

    assert receiver.requests[0].json() == {
        "title": "pushgate can post to this board",
        "board": "ops team",
        "test": True,
    }


async def test_hmac_signature_is_the_hex_hmac_sha256_of_the_body(receiver: Receiver) -> None:
    await Attempt(changeboard()).send(config(receiver, signingSecret=SIGNING), FLAG_EVENT)

    sent = receiver.requests[0]
    expected = hmac.new(SIGNING.encode(), sent.body, hashlib.sha256).hexdigest()
    assert sent.headers["X-Changeboard-Signature"] == expected


async def test_endpoint_override_replaces_scheme_host_and_port(receiver: Receiver) -> None:
    attempt = Attempt(changeboard(), overrides={"changeboard": receiver.url})

    settings = {"baseUrl": "https://changeboard.example.com", "apiToken": TOKEN, "board": "ops"}
    assert await attempt.send(settings, FLAG_EVENT) is None

    [sent] = receiver.requests
    assert sent.path == "/api/boards/ops/changes"
    assert sent.query == {"severity": "info"}  # the enum's defaultValue


def test_endpoints_rebase_keeps_path_and_query_and_adds_a_path_prefix() -> None:
    endpoints = Endpoints({"tool": "http://127.0.0.1:9000/mirror/"})

    assert endpoints.rebased("tool", "https://api.tool.com/v1/x?a=1") == (
        "http://127.0.0.1:9000/mirror/v1/x?a=1"
    )
    assert endpoints.rebased("other", "https://api.tool.com/v1") == "https://api.tool.com/v1"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (408, RetryableDeliveryError),
        (429, RetryableDeliveryError),
        (500, RetryableDeliveryError),
        (503, RetryableDeliveryError),
        (400, PermanentDeliveryError),
        (404, PermanentDeliveryError),
        (422, PermanentDeliveryError),
    ],
)
async def test_status_codes_are_classified_and_the_body_is_kept(
    receiver: Receiver, status: int, kind: type[Exception]
) -> None:
    receiver.answer(status, '{"error": "board is archived"}')

    failure = await Attempt(changeboard()).send(config(receiver), FLAG_EVENT)

    assert isinstance(failure, kind)
    assert failure.status_code == status
    assert failure.response_body == '{"error": "board is archived"}'


async def test_refused_connection_is_retryable(receiver: Receiver) -> None:
    url = receiver.url.rsplit(":", 1)[0] + ":1"  # nothing listens on port 1

    failure = await Attempt(changeboard()).send({**config(receiver), "baseUrl": url}, FLAG_EVENT)

    assert isinstance(failure, RetryableDeliveryError)


async def test_the_outbound_guard_applies_to_manifest_urls(receiver: Receiver) -> None:
    integration: Integration[Any] = changeboard()
    engine = Engine(Transport(Settings(request_timeout=2)), Endpoints())
    try:
        failure = await engine.attempt(
            integration,
            integration.parse_config(config(receiver)),
            parse_entry(FLAG_EVENT, now_ms=0),
        )
    finally:
        await engine.transport.close()

    assert isinstance(failure, BlockedTarget)
    assert receiver.requests == []


async def test_invalid_json_from_a_template_fails_permanently_and_sends_nothing(
    receiver: Receiver, tmp_path: Path
) -> None:
    # `{{ }}` HTML-escapes the already JSON-escaped quote: `\&quot;` is not JSON.
    template = '{"comment": "{{comment}}"}'
    folder = write_manifest(tmp_path / "tool", templates={"default": ("t.json.hbs", template)})

    failure = await Attempt(load_manifest(folder)).send(
        {"url": receiver.url}, {**FLAG_EVENT, "comment": 'said "no"'}
    )

    assert isinstance(failure, PermanentDeliveryError)
    assert "the default template (templates/t.json.hbs) rendered invalid JSON" in (
        failure.description
    )
    assert receiver.requests == []


async def test_text_templates_are_not_json_escaped_and_double_stash_html_escapes(
    receiver: Receiver, tmp_path: Path
) -> None:
    template = "{{name}} & {{{name}}}: {{comment}}"
    folder = write_manifest(tmp_path / "tool", templates={"default": ("t.txt", template)})

    await Attempt(load_manifest(folder)).send(
        {"url": receiver.url}, {**FLAG_EVENT, "name": "A<b>", "comment": 'x "y"'}
    )

    sent = receiver.requests[0]
    assert sent.body.decode() == "A&lt;b&gt; & A<b>: x &quot;y&quot;"
    assert sent.headers["Content-Type"] == "text/plain; charset=utf-8"


async def test_standard_payload_sends_the_entry_signed_like_launchdarkly_webhooks(
    receiver: Receiver, tmp_path: Path
) -> None:
    variables = [
        {"key": "url", "name": "URL", "type": "uri", "description": "Where to post."},
        {"key": "secret", "name": "Secret", "type": "string", "isSecret": True, "description": "s"},
    ]
    folder = write_manifest(
        tmp_path / "relay",
        variables=variables,
        useStandardWebhookPayload=True,
        endpoint={
            "hmacSignature": {"headerName": "X-LD-Signature", "hmacSecretFormVariableKey": "secret"}
        },
    )

    await Attempt(load_manifest(folder)).send(
        {"url": receiver.url, "secret": "s3cret-value"}, FLAG_EVENT
    )

    sent = receiver.requests[0]
    assert sent.json()["_id"] == "f1"
    assert sent.json()["accesses"] == FLAG_EVENT["accesses"]
    assert (
        sent.headers["X-LD-Signature"] == hmac.new(b"s3cret-value", sent.body, "sha256").hexdigest()
    )


async def test_credentials_in_the_url_become_a_basic_authorization_header(
    receiver: Receiver, tmp_path: Path
) -> None:
    variables = [
        {"key": "host", "name": "Host", "type": "string", "description": "host:port"},
        {"key": "user", "name": "User", "type": "string", "description": "u"},
        {"key": "apiKey", "name": "Key", "type": "string", "isSecret": True, "description": "k"},
    ]
    folder = write_manifest(
        tmp_path / "annotate",
        variables=variables,
        templates={"default": ("t.json", '{"title": "{{{title.plainText}}}"}')},
        endpoint={"url": "http://{{user}}:{{apiKey}}@{{host}}/v1/annotations"},
    )
    host = receiver.url.removeprefix("http://")

    await Attempt(load_manifest(folder)).send(
        {"host": host, "user": "me", "apiKey": "k:y-secret"}, FLAG_EVENT
    )

    sent = receiver.requests[0]
    assert sent.path == "/v1/annotations"
    assert sent.headers["Authorization"] == "Basic " + base64.b64encode(b"me:k:y-secret").decode()


async def test_a_header_value_with_a_line_break_is_refused_with_the_configuration(
    tmp_path: Path,
) -> None:
    variables = [
        {"key": "url", "name": "URL", "type": "uri", "description": "u"},
        {"key": "team", "name": "Team", "type": "string", "description": "t"},
    ]
    folder = write_manifest(
        tmp_path / "tool",
        variables=variables,
        templates={"default": ("t.json", "{}")},
        endpoint={"headers": [{"name": "X-Team", "value": "{{team}}"}]},
    )
    # Config text never holds a line break (limits.check_text), so a header cannot be split.
    with pytest.raises(InvalidRequest, match=r"config\.team: must not contain control"):
        load_manifest(folder).parse_config({"url": "https://example.com", "team": "a\r\nX-Evil: 1"})


async def test_a_url_that_renders_relative_fails_permanently_naming_it(tmp_path: Path) -> None:
    variables = [{"key": "host", "name": "Host", "type": "string", "description": "h"}]
    folder = write_manifest(
        tmp_path / "tool",
        variables=variables,
        templates={"default": ("t.json", "{}")},
        endpoint={"url": "{{host}}/api"},
    )

    failure = await Attempt(load_manifest(folder)).send({"host": "tool.internal"}, FLAG_EVENT)

    assert isinstance(failure, PermanentDeliveryError)
    assert "'tool.internal/api', which is not an absolute http(s) URL" in failure.description


def test_form_variables_become_the_configuration_form() -> None:
    form = {field["key"]: field for field in changeboard().form()}

    assert form["baseUrl"] == {
        "key": "baseUrl",
        "label": "Changeboard URL",
        "type": "uri",
        "required": True,
        "secret": False,
        "description": (
            "Where your Changeboard runs. [How to find it](https://changeboard.example.com/docs/url)."
        ),
        "placeholder": "https://changeboard.example.com",
    }
    assert form["apiToken"]["secret"] is True
    assert form["apiToken"]["required"] is True
    assert form["severity"]["type"] == "enum"
    assert form["severity"]["choices"] == ["info", "notice", "warning"]
    assert form["severity"]["default"] == "info"
    assert form["quiet"] == {**form["quiet"], "type": "boolean", "default": False}
    assert form["signingSecret"]["required"] is False
    assert form["signingSecret"]["secret"] is True


def test_defaults_are_filled_in_and_secrets_masked() -> None:
    integration = changeboard()
    parsed = integration.parse_config(
        {"baseUrl": "https://cb.example.com", "apiToken": TOKEN, "board": "ops"}
    )

    assert integration.dump_config(parsed, mask=True) == {
        "baseUrl": "https://cb.example.com",
        "apiToken": "********",
        "board": "ops",
        "severity": "info",
        "quiet": False,
        "utcOffset": "0",
    }
    assert integration.secret_values(parsed) == [TOKEN]


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"apiToken": None}, r"config\.apiToken: (Field required|Input should be)"),
        ({"board": ""}, r"config\.board: String should have at least 1 character"),
        ({"severity": "loud"}, r"config\.severity: Input should be 'info', 'notice' or 'warning'"),
        ({"baseUrl": "changeboard.example.com"}, r"config\.baseUrl: .*absolute http"),
        ({"colour": "red"}, r"config\.colour: unknown field"),
        ({"variable_0": "https://x.example.com"}, r"config\.variable_0: unknown field"),
    ],
)
def test_invalid_config_is_refused_naming_the_field(changes: dict[str, Any], problem: str) -> None:
    body = {"baseUrl": "https://cb.example.com", "apiToken": TOKEN, "board": "ops", **changes}
    body = {key: value for key, value in body.items() if value is not None}

    with pytest.raises(InvalidRequest, match=problem):
        changeboard().parse_config(body)


def test_the_manifest_gives_name_description_icon_and_default_policy() -> None:
    integration = changeboard()

    assert integration.key == "changeboard"
    assert integration.name == "Changeboard"
    assert integration.description.startswith("Post flag and project changes")
    assert integration.icon is not None
    assert integration.icon.startswith("data:image/svg+xml;base64,")
    assert base64.b64decode(integration.icon.split(",", 1)[1]).startswith(b"<svg")
    assert [s.to_json() for s in integration.default_statements] == [
        {
            "effect": "allow",
            "resources": ["proj/*:env/*:flag/*", "proj/*", "member/*"],
            "actions": ["*"],
        }
    ]


async def test_validation_that_renders_nothing_reports_that_nothing_was_sent(
    receiver: Receiver, tmp_path: Path
) -> None:
    only_on = "{{#equal verbKind 'updateOn'}}{}{{/equal}}"
    folder = write_manifest(tmp_path / "tool", templates={"flag": ("f.json", only_on)})
    integration = load_manifest(folder)
    engine = Engine(Transport(Settings(outbound_allow="127.0.0.0/8")), Endpoints())
    try:
        report = await validate(
            engine, integration, integration.parse_config({"url": receiver.url}), ManualClock()
        )
    finally:
        await engine.transport.close()

    assert report.ok is False
    assert report.error == "Nothing was sent: the flag template rendered nothing for this event."
    assert report.hint == SKIPPED_HINT
    assert receiver.requests == []


async def test_a_template_failing_on_a_configuration_value_fails_permanently_naming_it(
    receiver: Receiver,
) -> None:
    failure = await Attempt(changeboard()).send(config(receiver, utcOffset="soon"), FLAG_EVENT)

    assert isinstance(failure, PermanentDeliveryError)
    assert failure.description == (
        "the manifest's template failed: templates/flag.json.hbs: "
        "formatWithOffset: the offset 'soon' is not a number"
    )
    assert receiver.requests == []
