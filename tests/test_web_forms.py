"""The Edit configuration form, pure: reading posted fields, and mapping domain errors to fields."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from pydantic import Field, SecretStr

from pushgate.integrations.base import IntegrationConfig
from pushgate.integrations.datadog import Datadog
from pushgate.integrations.webhook import Webhook
from pushgate.web.forms import ConfigurationForm, StatementForm, field_errors
from pushgate.web.templating import readable_body, renderer

FIELDS: list[dict[str, Any]] = [
    {"key": "url", "type": "uri", "required": True, "secret": False},
    {"key": "token", "type": "string", "required": False, "secret": True},
    {"key": "hide", "type": "boolean", "required": False, "secret": False, "default": False},
    {"key": "size", "type": "number", "required": False, "secret": False},
    {"key": "site", "type": "enum", "required": False, "secret": False, "choices": ["us", 5]},
    {"key": "headers", "type": "map", "required": False, "secret": False},
]
CONFIG_KEYS = [f["key"] for f in FIELDS]


@pytest.mark.parametrize(
    ("message", "by_field", "general"),
    [
        (
            "config.url: Value error, must be an absolute http:// or https:// URL",
            {"config.url": "Must be an absolute http:// or https:// URL."},
            [],
        ),
        ("config.token: Field required", {"config.token": "Required."}, []),
        (
            "config.url: Field required; config.size: Input should be a valid integer",
            {"config.url": "Required.", "config.size": "Input should be a valid integer."},
            [],
        ),
        ("config.headers.X-A: bad; config.headers: worse", {"config.headers": "Bad. Worse."}, []),
        ("config.nope: unknown field", {}, ["config.nope: Unknown field."]),
        ("config: must be an object", {}, ["config: Must be an object."]),
        ("name: must be a non-empty string", {"name": "Must be a non-empty string."}, []),
        (
            "tags: must be a list of non-empty strings",
            {"tags": "Must be a list of non-empty strings."},
            [],
        ),
        (
            'statements[1].notResources[0]: "x" is not a valid resource specifier',
            {"statements[1].resources": '"x" is not a valid resource specifier.'},
            [],
        ),
        (
            "statements[0].actions: must be a non-empty list of strings",
            {"statements[0].actions": "Must be a non-empty list of strings."},
            [],
        ),
        (
            'statements[0].effect: must be "allow" or "deny"',
            {"statements[0].effect": 'Must be "allow" or "deny".'},
            [],
        ),
        (
            'statements[2]: give exactly one of "resources" and "notResources"',
            {"statements[2]": 'Give exactly one of "resources" and "notResources".'},
            [],
        ),
        (
            "statements: must be a list of statements",
            {"statements": "Must be a list of statements."},
            [],
        ),
        ("something odd happened", {}, ["Something odd happened."]),
    ],
)
def test_domain_errors_land_on_the_fields_they_name(
    message: str, by_field: dict[str, str], general: list[str]
) -> None:
    assert field_errors(message, CONFIG_KEYS) == (by_field, general)


def test_config_values_are_read_by_field_type() -> None:
    form = ConfigurationForm.submitted(
        FIELDS,
        {
            "config.url": " https://example.com/x ",
            "config.token": "********",
            "config.hide": "true",
            "config.size": "12",
            "config.site": "5",
            "config.headers": "X-A = 1\n\nX-B=two=2\n",
        },
    )
    body, problems = form.config_body(FIELDS)
    assert problems == {}
    assert body == {
        "url": "https://example.com/x",
        "token": "********",
        "hide": True,
        "size": 12,
        "site": 5,
        "headers": {"X-A": "1", "X-B": "two=2"},
    }


def test_empty_text_means_not_set_and_a_missing_checkbox_means_off() -> None:
    form = ConfigurationForm.submitted(FIELDS, {"config.url": "", "config.size": "  "})
    body, problems = form.config_body(FIELDS)
    assert body == {"hide": False}
    assert problems == {}


def test_a_number_that_is_not_a_number_is_left_for_the_model_to_report() -> None:
    form = ConfigurationForm.submitted(FIELDS, {"config.size": "1.5", "config.url": "x"})
    assert form.config_body(FIELDS)[0]["size"] == 1.5
    form = ConfigurationForm.submitted(FIELDS, {"config.size": "many"})
    assert form.config_body(FIELDS)[0]["size"] == "many"


def test_a_map_line_without_equals_is_a_problem_of_that_field() -> None:
    form = ConfigurationForm.submitted(FIELDS, {"config.headers": "X-A=1\nX-B"})
    _, problems = form.config_body(FIELDS)
    assert problems == {"config.headers": "Line 2: write one key=value pair per line."}


def test_statements_are_read_in_index_order_with_their_kinds() -> None:
    form = ConfigurationForm.submitted(
        [],
        {
            "statements[3].effect": "deny",
            "statements[3].resourcesKind": "notResources",
            "statements[3].resources": "proj/a:env/b:flag/c\n\n proj/*:env/*:flag/x ",
            "statements[3].actionsKind": "actions",
            "statements[3].actions": "updateOn",
            "statements[0].effect": "allow",
            "statements[0].resources": "",
            "statements[0].actionsKind": "notActions",
            "statements[0].actions": "*",
        },
    )
    assert form.statements_body() == [
        {"effect": "allow", "resources": [], "notActions": ["*"]},
        {
            "effect": "deny",
            "notResources": ["proj/a:env/b:flag/c", "proj/*:env/*:flag/x"],
            "actions": ["updateOn"],
        },
    ]


def test_a_statement_round_trips_through_the_form() -> None:
    stored = {"effect": "deny", "notResources": ["proj/*:env/test:flag/*"], "actions": ["a", "b"]}
    statement = StatementForm.from_json(stored)
    assert statement.resources_kind == "notResources"
    assert statement.actions == "a\nb"
    assert statement.to_json() == stored


def test_the_form_builds_the_create_body_and_a_replacing_patch() -> None:
    form = ConfigurationForm.submitted(
        [], {"name": "n", "on": "true", "tags": " a, ,b ", "version": "3"}
    )
    assert form.version == 3
    assert form.create_body({"url": "u"}) == {
        "name": "n",
        "on": True,
        "tags": ["a", "b"],
        "config": {"url": "u"},
        "statements": [],
    }
    assert [op["path"] for op in form.patch_operations({})] == [
        "/name",
        "/on",
        "/tags",
        "/config",
        "/statements",
    ]
    assert all(op["op"] == "replace" for op in form.patch_operations({}))


def test_a_new_form_has_the_catalog_defaults() -> None:
    for integration in (Webhook(), Datadog()):
        fields = integration.form()
        form = ConfigurationForm.new(
            fields, [{"effect": "allow", "resources": ["r/x"], "actions": ["*"]}]
        )
        assert form.on is True
        assert form.statements[0].resources == "r/x"
        for f in fields:
            if "default" in f:
                assert form.config[f["key"]] == (
                    f["default"] if f["type"] == "boolean" else str(f["default"])
                )


def test_a_saved_configuration_fills_the_form() -> None:
    fields = Datadog().form()
    representation = {
        "name": "dd",
        "on": False,
        "tags": ["x", "y"],
        "config": {
            "apiKey": "********",
            "hostURL": "https://api.datadoghq.eu",
            "hideMemberDetails": True,
        },
        "statements": [{"effect": "allow", "resources": ["proj/*"], "actions": ["*"]}],
    }
    form = ConfigurationForm.saved(fields, representation, version=7)
    assert (form.name, form.on, form.tags, form.version) == ("dd", False, "x, y", 7)
    assert form.config == {
        "apiKey": "********",
        "hostURL": "https://api.datadoghq.eu",
        "hideMemberDetails": True,
    }


@pytest.mark.parametrize(
    ("raw", "text", "folded"),
    [
        ('{"a":1}', '{\n  "a": 1\n}', False),
        ("plain text", "plain text", False),
        ("x" * 601, "x" * 601, True),
        ("\n".join("l" for _ in range(9)), "\n".join("l" for _ in range(9)), True),
        ("42", "42", False),  # JSON, but not an object or a list: left alone
    ],
)
def test_response_bodies_are_made_readable(raw: str, text: str, folded: bool) -> None:
    body = readable_body(raw)
    assert (body.text, body.folded) == (text, folded)


class EveryKind(IntegrationConfig):
    """A config model with one field of each form type."""

    url: str = Field(title="URL", json_schema_extra={"format": "uri"})
    token: SecretStr = Field(title="Token")
    flag: bool = Field(default=True, title="Flag")
    size: int | None = Field(default=None, title="Size")
    site: Literal["us", "eu"] = Field(default="eu", title="Site")
    headers: dict[str, str] | None = Field(default=None, title="Headers")


def test_the_panel_renders_a_control_for_each_kind_of_field() -> None:
    from pushgate.domain import Role
    from pushgate.integrations.base import form_fields
    from pushgate.web.editing import Panel
    from pushgate.web.session import Identity, Session
    from webpage import Page

    class Everything(Webhook):
        key = "everything"
        name = "Everything"

    fields = form_fields(EveryKind)
    form = ConfigurationForm.submitted(fields, {"config.token": "********", "config.flag": "true"})
    panel = Panel(Everything(), fields, form, "abc", frozenset({"token"}), {"config.size": "Bad."})
    session = Session(Identity("admin:x", "me", Role.ADMIN), "csrf", 0, "sid")
    html = renderer().env.get_template("_panel.html").render(panel=panel, session=session)
    page = Page(html)
    assert page.one(name="config.url").attrs["type"] == "url"
    assert page.one(name="config.token").attrs["type"] == "password"
    assert "kept unless you type a new one" in page.one("p", id="f-config-token-help").text
    assert page.one(name="config.flag").attrs["type"] == "checkbox"
    assert "checked" in page.one(name="config.flag").attrs
    assert page.one(name="config.size").attrs["inputmode"] == "decimal"
    assert page.error_for("config.size") == "Bad."
    assert [o.attrs["value"] for o in page.find("option") if o.text in ("us", "eu")] == ["us", "eu"]
    assert page.one(name="config.headers").tag == "textarea"
