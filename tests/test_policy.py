"""Policy statements: LaunchDarkly resource specifiers, action globs, deny wins, validation."""

from __future__ import annotations

import itertools

import pytest

from pushgate.errors import InvalidRequest
from pushgate.policy import (
    DEFAULT_STATEMENTS,
    Access,
    Effect,
    Statement,
    is_allowed,
    parse_statements,
)

PROD_FLAG = "proj/web:env/production:flag/new-checkout"
TEST_FLAG = "proj/web:env/test:flag/new-checkout"


def allow(*resources: str, actions: tuple[str, ...] = ("*",)) -> Statement:
    return Statement(Effect.ALLOW, resources=resources, actions=actions)


def deny(*resources: str, actions: tuple[str, ...] = ("*",)) -> Statement:
    return Statement(Effect.DENY, resources=resources, actions=actions)


def touches(resource: str, action: str = "updateOn") -> Access:
    return Access(action=action, resource=resource)


@pytest.mark.parametrize(
    ("specifier", "resource", "expected"),
    [
        ("proj/*:env/production:flag/*", PROD_FLAG, True),
        ("proj/*:env/production:flag/*", "proj/web", False),
        ("proj/*:env/production:flag/*", "proj/web:env/production", False),
        ("proj/*:env/production:flag/*", "proj/web:env/production:segment/beta", False),
        ("proj/*:env/production:flag/*", "proj/web:env/production:flag/x:extra/y", False),
        ("proj/web", "proj/web", True),
        ("proj/*:env/*:segment/*", "proj/web:env/test:segment/beta-users", True),
        ("member/*", "member/5f1a", True),
        ("member/*", "proj/5f1a", False),
        ("proj/*:metric/*", "proj/web:metric/latency", True),
        ("proj/*:metric/*", "proj/web:env/latency", False),
    ],
)
def test_specifier_needs_same_segment_count_and_types(
    specifier: str, resource: str, expected: bool
) -> None:
    assert allow(specifier).matches(touches(resource)) is expected


@pytest.mark.parametrize(
    ("key_glob", "key", "expected"),
    [
        ("new-*", "new-checkout", True),
        ("new-*", "new-", True),
        ("new-*", "old-new-checkout", False),
        ("*-ui", "checkout-ui", True),
        ("*-ui", "checkout-ui-v2", False),
        ("a*b*c", "a-x-b-y-c", True),
        ("a*b*c", "acb", False),
        ("*", "anything.at_all-9", True),
        ("a.b", "a.b", True),
        ("a.b", "aXb", False),
        ("exact", "exact", True),
        ("exact", "exactly", False),
        ("a*a*a", "aa", False),
        ("a*a*a", "aaa", True),
    ],
)
def test_key_globs_star_is_any_run_everything_else_literal(
    key_glob: str, key: str, expected: bool
) -> None:
    statement = allow(f"proj/*:env/production:flag/{key_glob}")
    assert statement.matches(touches(f"proj/web:env/production:flag/{key}")) is expected


def test_globs_with_many_stars_do_not_backtrack() -> None:
    # A backtracking `.*a.*a.*a.*a.*b` needs time growing as the key length to the fifth power:
    # on this key, days. The atomic-group matcher answers at once; a regression shows as a hang.
    statement = allow("flag/" + "*a" * 4 + "*b")
    assert not statement.matches(touches("flag/" + "a" * 5000))
    assert statement.matches(touches("flag/" + "a" * 5000 + "b"))


@pytest.mark.parametrize(
    ("specifier", "resource", "expected"),
    [
        ("proj/*:env/*:flag/*;beta,ui", "proj/w:env/p:flag/f;beta,ui", True),
        ("proj/*:env/*:flag/*;beta,ui", "proj/w:env/p:flag/f;ui,extra,beta", True),
        ("proj/*:env/*:flag/*;beta,ui", "proj/w:env/p:flag/f;beta", False),
        ("proj/*:env/*:flag/*;beta,ui", "proj/w:env/p:flag/f", False),
        ("proj/*;mobile:env/*", "proj/web;mobile:env/production", True),
        ("proj/*;mobile:env/*", "proj/web:env/production;mobile", False),
        ("proj/*:env/*;critical:flag/*", "proj/w;x:env/p;critical:flag/f;beta", True),
    ],
)
def test_tags_on_one_specifier_must_all_be_present(
    specifier: str, resource: str, expected: bool
) -> None:
    assert allow(specifier).matches(touches(resource)) is expected


@pytest.mark.parametrize(
    "resource",
    ["proj/web:env/production:flag/f", "proj/web;mobile:env/production;critical:flag/f;beta"],
)
def test_specifier_without_tags_ignores_resource_tags(resource: str) -> None:
    assert allow("proj/*:env/production:flag/*").matches(touches(resource))


@pytest.mark.parametrize(
    ("specifier", "resource", "expected"),
    [
        ("proj/*:env/*:flag/*;Beta", "proj/w:env/p:flag/f;BETA", True),
        ("proj/*:env/*:flag/*;beta", "proj/w:env/p:flag/f;Beta", True),
        ("proj/*:env/*:flag/Checkout", "proj/w:env/p:flag/checkout", False),
        ("proj/*:env/*:flag/checkout", "proj/w:env/p:flag/checkout", True),
        ("proj/*:env/Prod*:flag/*", "proj/w:env/production:flag/f", False),
        ("proj/*", "PROJ/web", False),
    ],
)
def test_tags_are_case_insensitive_keys_are_not(
    specifier: str, resource: str, expected: bool
) -> None:
    assert allow(specifier).matches(touches(resource)) is expected


@pytest.mark.parametrize(
    ("actions", "action", "expected"),
    [
        (("*",), "createFlag", True),
        (("update*",), "updateOn", True),
        (("update*",), "update", True),
        (("update*",), "createFlag", False),
        (("updateOn",), "updateOn", True),
        (("updateOn",), "updateon", False),
        (("updateOn",), "updateOnExtra", False),
        (("update", "updateOn"), "updateOn", True),
        (("deleteFlag", "update*"), "updateName", True),
        (("deleteFlag", "update*"), "createFlag", False),
    ],
)
def test_action_globs_are_case_sensitive(
    actions: tuple[str, ...], action: str, expected: bool
) -> None:
    assert allow(PROD_FLAG, actions=actions).matches(touches(PROD_FLAG, action)) is expected


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (PROD_FLAG, True),
        (TEST_FLAG, False),
        ("proj/web", True),
        ("proj/web:env/test", True),
    ],
)
def test_not_resources_matches_everything_else(resource: str, expected: bool) -> None:
    statement = Statement(Effect.ALLOW, not_resources=("proj/*:env/test:flag/*",), actions=("*",))
    assert statement.matches(touches(resource)) is expected


@pytest.mark.parametrize(
    ("action", "expected"),
    [("updateOn", True), ("createFlag", True), ("deleteFlag", False), ("deleteSegment", False)],
)
def test_not_actions(action: str, expected: bool) -> None:
    statement = Statement(Effect.ALLOW, resources=("proj/*",), not_actions=("delete*",))
    assert statement.matches(touches("proj/web", action)) is expected


@pytest.mark.parametrize("resource", ["", "proj", "proj/web:", "proj/web;", "proj web/x"])
def test_malformed_event_resource_is_matched_by_no_statement(resource: str) -> None:
    everything_else = Statement(Effect.ALLOW, not_resources=("proj/*",), actions=("*",))
    assert not everything_else.matches(touches(resource))
    assert not is_allowed([everything_else, allow("proj/*")], [touches(resource)])


@pytest.mark.parametrize(
    ("statements", "expected"),
    [
        ([allow("proj/*:env/*:flag/*")], True),
        ([allow("proj/*:env/*:flag/*"), deny("proj/*:env/production:flag/*")], False),
        ([allow("proj/*:env/*:flag/*"), deny("proj/*:env/test:flag/*")], True),
        ([allow(PROD_FLAG), deny("proj/*:env/*:flag/*", actions=("updateOn",))], False),
        ([allow(PROD_FLAG), deny("proj/*:env/*:flag/*", actions=("create*",))], True),
        ([deny("proj/*:env/*:flag/*")], False),
    ],
)
def test_deny_statement_wins_over_allow(statements: list[Statement], expected: bool) -> None:
    assert is_allowed(statements, [touches(PROD_FLAG)]) is expected


def test_event_is_delivered_if_any_access_is_allowed_and_not_denied() -> None:
    statements = [allow("proj/*:env/*:flag/*"), deny("proj/*:env/test:flag/*")]
    assert not is_allowed(statements, [touches(TEST_FLAG)])
    assert is_allowed(statements, [touches(TEST_FLAG), touches(PROD_FLAG)])
    assert is_allowed(statements, iter([touches(TEST_FLAG), touches(PROD_FLAG)]))


@pytest.mark.parametrize(
    ("statements", "resource", "expected"),
    [
        ([allow("proj/*:env/*:flag/*"), deny(PROD_FLAG), allow(PROD_FLAG)], PROD_FLAG, False),
        ([allow("proj/*:env/*:flag/*"), deny(PROD_FLAG), allow(PROD_FLAG)], TEST_FLAG, True),
        ([allow("member/*"), deny("proj/*"), allow("proj/*")], "proj/web", False),
    ],
)
def test_statement_order_does_not_matter(
    statements: list[Statement], resource: str, expected: bool
) -> None:
    for order in itertools.permutations(statements):
        assert is_allowed(order, [touches(resource)]) is expected, order


@pytest.mark.parametrize(
    ("statements", "accesses"),
    [
        ([], [touches(PROD_FLAG)]),
        ([], [touches("proj/web"), touches("member/me", "createMember")]),
        ([allow("proj/*:env/*:flag/*")], []),
    ],
)
def test_no_statements_allows_nothing(statements: list[Statement], accesses: list[Access]) -> None:
    assert not is_allowed(statements, accesses)


@pytest.mark.parametrize(
    ("resource", "action", "expected"),
    [
        ("proj/web:env/production:flag/new-checkout", "updateOn", True),
        ("proj/mobile:env/production;critical:flag/x;beta", "deleteFlag", True),
        ("proj/web:env/test:flag/new-checkout", "updateOn", False),
        ("proj/web:env/production-eu:flag/new-checkout", "updateOn", False),
        ("proj/web:env/production", "updateName", False),
        ("proj/web", "updateName", False),
        ("proj/web:env/production:segment/beta", "updateIncluded", False),
        ("member/me", "updateRole", False),
    ],
)
def test_default_policy_matches_production_flags_only(
    resource: str, action: str, expected: bool
) -> None:
    assert is_allowed(DEFAULT_STATEMENTS, [touches(resource, action)]) is expected


def test_default_policy_is_one_allow_statement_for_production_flags() -> None:
    assert [s.to_json() for s in DEFAULT_STATEMENTS] == [
        {"effect": "allow", "resources": ["proj/*:env/production:flag/*"], "actions": ["*"]}
    ]


@pytest.mark.parametrize(
    "specifier",
    [
        "proj/web",
        "proj/*:env/production",
        "proj/web;mobile:env/prod*:flag/new-*;beta,ui",
        "proj/*:env/*:segment/*",
        "member/*",
        "proj/*:metric/*",
        "code-reference/*",
        "relay_proxy_config/abc.def",
    ],
)
def test_valid_specifiers_are_accepted(specifier: str) -> None:
    raw = {"effect": "allow", "resources": [specifier], "actions": ["*"]}
    assert Statement.from_json(raw).resources == (specifier,)


@pytest.mark.parametrize(
    "specifier",
    [
        "proj",
        "proj/",
        "/web",
        "proj/web:",
        ":proj/web",
        "proj/web::env/x",
        "proj/web;",
        "proj/web;a,,b",
        "proj/web;a,",
        "proj/a/b",
        "pr oj/web",
        "proj/we b",
        "pr!oj/web",
    ],
)
def test_invalid_specifier_is_rejected_naming_its_place(specifier: str) -> None:
    raw = [
        {"effect": "allow", "resources": ["proj/*"], "actions": ["*"]},
        {"effect": "deny", "notResources": ["member/*", specifier], "actions": ["*"]},
    ]
    with pytest.raises(InvalidRequest) as caught:
        parse_statements(raw)
    assert caught.value.message == (
        f'statements[1].notResources[1]: "{specifier}" is not a valid resource specifier'
        ' (expected e.g. "proj/*:env/production:flag/*")'
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("allow", "statements[0]: must be an object"),
        (
            {"resources": ["proj/*"], "actions": ["*"]},
            'statements[0].effect: must be "allow" or "deny"',
        ),
        (
            {"effect": "Allow", "resources": ["proj/*"], "actions": ["*"]},
            'statements[0].effect: must be "allow" or "deny"',
        ),
        (
            {"effect": ["allow"], "resources": ["proj/*"], "actions": ["*"]},
            'statements[0].effect: must be "allow" or "deny"',
        ),
        (
            {"effect": "allow", "resources": ["proj/*"], "actions": ["*"], "foo": 1},
            "statements[0].foo: unknown field",
        ),
        (
            {"effect": "allow", "resources": ["proj/*"], "not_actions": ["*"]},
            "statements[0].not_actions: unknown field",
        ),
        (
            {"effect": "allow", "actions": ["*"]},
            'statements[0]: give exactly one of "resources" and "notResources"',
        ),
        (
            {"effect": "allow", "resources": ["a/*"], "notResources": ["b/*"], "actions": ["*"]},
            'statements[0]: give exactly one of "resources" and "notResources"',
        ),
        (
            {"effect": "allow", "resources": ["proj/*"]},
            'statements[0]: give exactly one of "actions" and "notActions"',
        ),
        (
            {"effect": "deny", "resources": ["proj/*"], "actions": ["*"], "notActions": ["x"]},
            'statements[0]: give exactly one of "actions" and "notActions"',
        ),
        (
            {"effect": "allow", "resources": "proj/*", "actions": ["*"]},
            "statements[0].resources: must be a non-empty list of strings",
        ),
        (
            {"effect": "allow", "resources": [], "actions": ["*"]},
            "statements[0].resources: must be a non-empty list of strings",
        ),
        (
            {"effect": "allow", "resources": ["proj/*"], "notActions": []},
            "statements[0].notActions: must be a non-empty list of strings",
        ),
        (
            {"effect": "allow", "resources": ["proj/*", 7], "actions": ["*"]},
            "statements[0].resources[1]: must be a non-empty string",
        ),
        (
            {"effect": "allow", "resources": [""], "actions": ["*"]},
            "statements[0].resources[0]: must be a non-empty string",
        ),
        (
            {"effect": "allow", "resources": ["proj/*"], "actions": ["*", ""]},
            "statements[0].actions[1]: must be a non-empty string",
        ),
    ],
)
def test_invalid_statement_is_rejected_naming_the_field(raw: object, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        Statement.from_json(raw)
    assert caught.value.message == message


def test_errors_name_the_given_place() -> None:
    with pytest.raises(InvalidRequest) as caught:
        Statement.from_json({"effect": "block"}, where="policy[3]")
    assert caught.value.message == 'policy[3].effect: must be "allow" or "deny"'


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ({"effect": "allow"}, "statements", "statements: must be a list of statements"),
        (None, "filter.statements", "filter.statements: must be a list of statements"),
        ([{"effect": "allow", "resources": ["proj/*"]}], "policy", "policy[0]: give exactly one"),
    ],
)
def test_parse_statements_errors_name_the_field(raw: object, field: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_statements(raw, field=field)
    assert caught.value.message.startswith(message)


def test_empty_statement_list_is_valid_and_allows_nothing() -> None:
    statements = parse_statements([])
    assert statements == []
    assert not is_allowed(statements, [touches(PROD_FLAG)])


def test_null_counts_as_an_absent_list() -> None:
    raw = {"effect": "allow", "resources": ["proj/*"], "notResources": None, "actions": ["*"]}
    assert Statement.from_json(raw).to_json() == {
        "effect": "allow",
        "resources": ["proj/*"],
        "actions": ["*"],
    }


@pytest.mark.parametrize(
    "raw",
    [
        {"effect": "allow", "resources": ["proj/*:env/production:flag/*"], "actions": ["*"]},
        {"effect": "deny", "notResources": ["proj/a;x,y", "member/*"], "actions": ["update*"]},
        {"effect": "allow", "resources": ["proj/*"], "notActions": ["delete*", "create*"]},
        {"effect": "deny", "notResources": ["proj/*"], "notActions": ["x"]},
    ],
)
def test_to_json_round_trips_and_omits_absent_keys(raw: dict[str, object]) -> None:
    statement = Statement.from_json(raw)
    assert statement.to_json() == raw
    assert Statement.from_json(statement.to_json()) == statement


def test_parse_statements_keeps_order_and_values() -> None:
    raw = [
        {"effect": "deny", "resources": ["proj/*:env/test:flag/*"], "actions": ["*"]},
        {"effect": "allow", "notResources": ["member/*"], "notActions": ["delete*"]},
    ]
    assert parse_statements(raw) == [
        Statement(Effect.DENY, resources=("proj/*:env/test:flag/*",), actions=("*",)),
        Statement(Effect.ALLOW, not_resources=("member/*",), not_actions=("delete*",)),
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"actions": ("*",)},
        {"resources": ("proj/*",)},
        {"resources": ("proj/*",), "not_resources": ("member/*",), "actions": ("*",)},
        {"resources": (), "actions": ("*",)},
        {"resources": ("proj",), "actions": ("*",)},
    ],
)
def test_statement_built_in_code_is_checked_too(kwargs: dict[str, tuple[str, ...]]) -> None:
    with pytest.raises(ValueError, match=r"Statement needs|not a valid resource specifier"):
        Statement(Effect.ALLOW, **kwargs)
