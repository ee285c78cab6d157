"""Events: validating audit-log entries and the template context derived from them."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from pushgate.errors import InvalidRequest
from pushgate.events import (
    MAX_BATCH,
    VALIDATION_EVENT_ID_PREFIX,
    Environment,
    EventContext,
    Member,
    Project,
    accesses_of,
    build_context,
    parse_batch,
    parse_entry,
    validation_entry,
)
from pushgate.policy import Access

NOW_MS = 1_700_000_500_000
LD = "https://app.launchdarkly.com"
NOT_MILLISECONDS = "must be an integer (Unix milliseconds)"

EXAMPLE: dict[str, Any] = {
    "_id": "6457c4b1e1d2f0a1b2c3d4e5",
    "date": 1700000000000,
    "kind": "flag",
    "name": "New checkout",
    "accesses": [
        {
            "action": "updateOn",
            "resource": "proj/web;mobile:env/production;critical:flag/new-checkout;beta",
        }
    ],
    "title": "[Ana Lopez](mailto:ana@example.com) turned on the flag "
    "[New checkout](https://app.launchdarkly.com/web/production/features/new-checkout)"
    " in `Production`",
    "titleVerb": "turned on the flag",
    "description": "* Turned on the flag\n* Changed the default rule",
    "shortDescription": "...",
    "comment": "Rolling out to everyone",
    "member": {"email": "ana@example.com", "firstName": "Ana", "lastName": "Lopez"},
    "target": {"name": "New checkout", "resources": ["proj/web:env/production:flag/new-checkout"]},
    "_links": {"site": {"href": "/web/production/features/new-checkout", "type": "text/html"}},
    "project": {"key": "web", "name": "Web shop"},
    "environment": {"key": "production", "name": "Production"},
}


def access(resource: str, action: str = "updateOn") -> dict[str, str]:
    return {"action": action, "resource": resource}


def context_of(entry: dict[str, Any], link_base_url: str | None = LD) -> EventContext:
    return build_context(parse_entry(entry, now_ms=NOW_MS), link_base_url=link_base_url)


# --- parse_entry ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "body: must be an object"),
        ({"accesses": [], "date": "yesterday"}, f"body.date: {NOT_MILLISECONDS}"),
        ({"accesses": [], "date": True}, f"body.date: {NOT_MILLISECONDS}"),
        ({"accesses": [], "date": 1.7e12}, f"body.date: {NOT_MILLISECONDS}"),
        ({"accesses": [], "date": -1}, "body.date: must be between 0 and 253402300799999"),
        ({"accesses": [], "_id": ""}, "body._id: must be a non-empty string"),
        ({"accesses": [], "_id": 42}, "body._id: must be a non-empty string"),
        ({}, "body.accesses: must be a list of {action, resource} objects"),
        ({"accesses": {"action": "x"}}, "body.accesses: must be a list"),
        ({"accesses": ["proj/web"]}, "body.accesses[0]: must be an object with action and"),
        ({"accesses": [{"action": "updateOn", "resource": 7}]}, "body.accesses[0].resource: must"),
        ({"accesses": [{"resource": "proj/web"}]}, "body.accesses[0].action: must be a string"),
        ({"accesses": [access("proj/web", action="")]}, "body.accesses[0].action: must not be"),
        ({"accesses": [], "kind": 5}, "body.kind: must be a string"),
        ({"accesses": [], "title": 3}, "body.title: must be a string"),
        ({"accesses": [], "comment": ["x"]}, "body.comment: must be a string"),
        ({"accesses": [], "member": "ana"}, "body.member: must be an object"),
        ({"accesses": [], "member": {"email": 1}}, "body.member.email: must be a string"),
        ({"accesses": [], "target": []}, "body.target: must be an object"),
        ({"accesses": [], "_links": "x"}, "body._links: must be an object"),
        ({"accesses": [], "project": {"name": 5}}, "body.project.name: must be a string"),
        ({"accesses": [], "environment": {"key": 5}}, "body.environment.key: must be a string"),
        ({"accesses": [], "tags": "a,b"}, "body.tags: must be a list of strings"),
        ({"accesses": [], "tags": ["a", 1]}, "body.tags[1]: must be a string"),
    ],
)
def test_parse_entry_error_names_the_field(raw: object, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_entry(raw, now_ms=NOW_MS)
    assert caught.value.message.startswith(message)


def test_parse_entry_names_the_place_it_was_given() -> None:
    with pytest.raises(InvalidRequest, match=r"^items\[3\]\.date: "):
        parse_entry({"accesses": [], "date": "x"}, where="items[3]", now_ms=NOW_MS)


def test_missing_id_is_generated_like_a_launchdarkly_id_and_date_defaults_to_now() -> None:
    first = parse_entry({"accesses": []}, now_ms=NOW_MS)
    second = parse_entry({"accesses": []}, now_ms=NOW_MS)
    assert re.fullmatch(r"[0-9a-f]{24}", first["_id"])
    assert first["_id"] != second["_id"]
    assert first["date"] == NOW_MS


def test_null_id_and_date_count_as_absent() -> None:
    entry = parse_entry({"accesses": [], "_id": None, "date": None}, now_ms=NOW_MS)
    assert re.fullmatch(r"[0-9a-f]{24}", entry["_id"])
    assert entry["date"] == NOW_MS


def test_parse_entry_keeps_given_values_and_unknown_keys_in_a_new_dict() -> None:
    raw = copy.deepcopy(EXAMPLE) | {"customProperty": {"team": ["payments"]}}
    before = copy.deepcopy(raw)
    entry = parse_entry(raw, now_ms=NOW_MS)
    assert entry == before
    assert entry is not raw
    assert raw == before


@pytest.mark.parametrize(
    ("accesses", "kind"),
    [
        ([access("proj/web:env/production:flag/new-checkout")], "flag"),
        ([access("proj/web;mobile")], "project"),
        ([access("proj/web:env/staging;critical")], "environment"),
        ([access("proj/web:env/production:segment/beta-users")], "segment"),
        ([access("member/6457c4b1"), access("proj/web")], "member"),
        ([access("acct")], "account"),
        ([], "unknown"),
    ],
)
def test_kind_defaults_to_the_type_of_the_first_resource(
    accesses: list[dict[str, str]], kind: str
) -> None:
    assert parse_entry({"accesses": accesses}, now_ms=NOW_MS)["kind"] == kind


def test_a_given_kind_is_kept() -> None:
    entry = parse_entry({"kind": "flag", "accesses": [access("proj/web")]}, now_ms=NOW_MS)
    assert entry["kind"] == "flag"


def test_accesses_of_gives_policy_accesses_in_order() -> None:
    entry = parse_entry(
        {"accesses": [access("proj/web:env/a:flag/x"), access("proj/web", "updateName")]},
        now_ms=NOW_MS,
    )
    assert accesses_of(entry) == [
        Access("updateOn", "proj/web:env/a:flag/x"),
        Access("updateName", "proj/web"),
    ]


# --- parse_batch ----------------------------------------------------------------------------


def test_a_single_entry_body_is_a_batch_of_one() -> None:
    assert parse_batch(EXAMPLE, now_ms=NOW_MS) == [parse_entry(EXAMPLE, now_ms=NOW_MS)]


def test_batch_keeps_order_and_the_first_of_duplicate_ids() -> None:
    items = [
        {"_id": "a", "name": "first a", "accesses": []},
        {"_id": "b", "accesses": []},
        {"_id": "a", "name": "second a", "accesses": []},
        {"accesses": []},
        {"_id": "c", "accesses": []},
    ]
    entries = parse_batch({"items": items}, now_ms=NOW_MS)
    ids = [entry["_id"] for entry in entries]
    assert len(ids) == 4
    assert (ids[0], ids[1], ids[3]) == ("a", "b", "c")
    assert re.fullmatch(r"[0-9a-f]{24}", ids[2])
    assert entries[0]["name"] == "first a"


def test_batch_error_names_the_item() -> None:
    items: list[dict[str, Any]] = [{"accesses": []}] * 3 + [
        {"accesses": [{"action": "updateOn", "resource": None}]}
    ]
    with pytest.raises(InvalidRequest) as caught:
        parse_batch({"items": items}, now_ms=NOW_MS)
    assert caught.value.message == "items[3].accesses[0].resource: must be a string"


def test_batch_of_exactly_max_batch_is_accepted() -> None:
    items: list[dict[str, Any]] = [{"accesses": []} for _ in range(MAX_BATCH)]
    assert len(parse_batch({"items": items}, now_ms=NOW_MS)) == MAX_BATCH


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([{"accesses": []}] * (MAX_BATCH + 1), f"must hold 1 to {MAX_BATCH} entries, not 1001"),
        ([], f"must hold 1 to {MAX_BATCH} entries, not 0"),
        ({"accesses": []}, "must be a list of entries"),
    ],
)
def test_batch_size_and_shape_are_checked(items: object, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_batch({"items": items}, now_ms=NOW_MS)
    assert caught.value.message == f"body.items: {message}"


def test_a_body_that_is_not_an_object_is_rejected_as_body() -> None:
    with pytest.raises(InvalidRequest, match=r"^body: must be an object"):
        parse_batch("hello", now_ms=NOW_MS)


# --- build_context --------------------------------------------------------------------------


def test_context_of_the_launchdarkly_example() -> None:
    entry = parse_entry(EXAMPLE, now_ms=NOW_MS)
    context = build_context(entry, link_base_url=LD)
    production = Environment(key="production", name="Production", tags=("critical",))
    expected = {
        "id": "6457c4b1e1d2f0a1b2c3d4e5",
        "date_ms": 1700000000000,
        "kind": "flag",
        "key": "new-checkout",
        "name": "New checkout",
        "action": "updateOn",
        "actions": ("updateOn",),
        "resource": "proj/web:env/production:flag/new-checkout",
        "member": Member(email="ana@example.com", first_name="Ana", last_name="Lopez"),
        "comment": "Rolling out to everyone",
        "given_title": EXAMPLE["title"],
        "title_verb": EXAMPLE["titleVerb"],
        "is_environment": False,
        "details_markdown": "* Turned on the flag\n* Changed the default rule",
        "project": Project(key="web", name="Web shop", tags=("mobile",), environment=production),
        "url": "https://app.launchdarkly.com/web/production/features/new-checkout",
        "tags": (),
        "payload": entry,
    }
    assert {name: getattr(context, name) for name in expected} == expected
    assert context.title == "Ana Lopez turned on the flag New checkout in Production"
    assert context.title_html == (
        '<a href="mailto:ana@example.com">Ana Lopez</a> turned on the flag '
        '<a href="https://app.launchdarkly.com/web/production/features/new-checkout">'
        "New checkout</a> in <code>Production</code>"
    )
    assert context.details == "- Turned on the flag\n- Changed the default rule"
    assert context.date_s == 1_700_000_000.0
    assert context.rfc3339 == "2023-11-14T22:13:20.000Z"
    assert context.environment == production


def test_context_payload_is_a_read_only_view() -> None:
    context = context_of(EXAMPLE)
    with pytest.raises(TypeError):
        context.payload["kind"] = "segment"  # type: ignore[index]


def test_context_of_a_project_event() -> None:
    context = context_of(
        {
            "accesses": [access("proj/web;mobile", "updateName")],
            "titleVerb": "renamed the project",
            "member": {"email": "ana@example.com"},
            "project": {"key": "web", "name": "Web shop"},
        }
    )
    assert (context.kind, context.key, context.name) == ("project", "web", "web")
    assert context.project == Project(
        key="web", name="Web shop", tags=("mobile",), environment=None
    )
    assert context.environment is None
    assert context.title == "ana@example.com renamed the project web"


def test_context_of_an_environment_event_does_not_say_in_itself() -> None:
    context = context_of(
        {
            "accesses": [access("proj/web:env/staging", "createEnvironment")],
            "name": "Staging",
            "titleVerb": "created the environment",
            "member": {"firstName": "Ana", "lastName": "Lopez"},
            "environment": {"key": "staging", "name": "Staging"},
        }
    )
    assert (context.kind, context.key, context.resource) == (
        "environment",
        "staging",
        "proj/web:env/staging",
    )
    assert context.environment == Environment(key="staging", name="Staging", tags=())
    assert context.project is not None
    assert context.project.name == "web"
    assert context.title == "Ana Lopez created the environment Staging"


def test_context_of_a_minimal_entry_with_only_accesses() -> None:
    context = context_of({"accesses": [access("proj/web:env/production;critical:flag/beta")]})
    assert context.kind == "flag"
    assert (context.key, context.name, context.action) == ("beta", "beta", "updateOn")
    assert context.member is None
    assert context.comment is None
    assert context.title == "Someone updateOn beta in production"
    assert context.title_markdown == context.title
    assert context.title_html == context.title
    assert (context.details, context.details_markdown) == ("", "")
    assert context.url is None
    assert context.project == Project(
        key="web",
        name="web",
        tags=(),
        environment=Environment(key="production", name="production", tags=("critical",)),
    )


def test_context_of_an_entry_with_no_accesses() -> None:
    context = context_of({"accesses": [], "name": "Nightly cleanup", "kind": "job"})
    assert (context.kind, context.key, context.name) == ("job", None, "Nightly cleanup")
    assert (context.action, context.actions, context.resource) == (None, (), None)
    assert context.project is None
    assert context.environment is None
    assert context.title == "Someone changed Nightly cleanup"


def test_name_falls_back_to_target_then_key_then_kind() -> None:
    with_target = {"accesses": [access("proj/web:env/a:flag/x")], "target": {"name": "Flag X"}}
    assert context_of(with_target).name == "Flag X"
    assert context_of({"accesses": [access("proj/web:env/a:flag/x")]}).name == "x"
    assert context_of({"accesses": []}).name == "unknown"


def test_actions_are_distinct_and_in_order() -> None:
    accesses = [access("proj/a", "updateOn"), access("proj/b", "updateRules"), access("proj/c")]
    context = context_of({"accesses": accesses})
    assert context.actions == ("updateOn", "updateRules")


def test_project_and_environment_objects_name_only_the_matching_keys() -> None:
    context = context_of(
        {
            "accesses": [access("proj/web:env/production:flag/x")],
            "project": {"key": "mobile", "name": "Mobile app"},
            "environment": {"name": "Production"},
        }
    )
    assert context.project is not None
    assert context.project.name == "web"
    assert context.environment == Environment(key="production", name="Production", tags=())


def test_a_built_title_links_the_name_to_the_change() -> None:
    context = context_of(
        {
            "accesses": [access("proj/web:env/production:flag/new-checkout")],
            "name": "New checkout",
            "titleVerb": "turned on the flag",
            "member": {"firstName": "Ana"},
            "_links": {"site": {"href": "/web/production/features/new-checkout"}},
        }
    )
    link = f"{LD}/web/production/features/new-checkout"
    assert context.title == "Ana turned on the flag New checkout in production"
    assert context.title_markdown == f"Ana turned on the flag [New checkout]({link}) in production"
    assert context.title_html == (
        f'Ana turned on the flag <a href="{link}">New checkout</a> in production'
    )


def test_a_hostile_title_is_escaped_in_html() -> None:
    context = context_of(
        {
            "accesses": [],
            "title": '<script>alert(1)</script> [x](javascript:alert(1)) [y](https://e.x/?a="b"&c)',
        }
    )
    assert "<script" not in context.title_html
    assert "javascript:" not in context.title_html
    assert context.title_html == (
        "&lt;script&gt;alert(1)&lt;/script&gt; x) "
        '<a href="https://e.x/?a=&quot;b&quot;&amp;c">y</a>'
    )


def test_hostile_parts_of_a_built_title_are_escaped_in_markdown_and_html() -> None:
    context = context_of(
        {
            "accesses": [access("proj/web:env/prod:flag/x")],
            "name": "<img src=x onerror=alert(1)> *big*",
            "member": {"firstName": "[Mallory](https://evil.example)"},
        }
    )
    assert context.title == (
        "[Mallory](https://evil.example) updateOn <img src=x onerror=alert(1)> *big* in prod"
    )
    assert "<img" not in context.title_html
    assert "<a " not in context.title_html
    assert "<em>" not in context.title_html


@pytest.mark.parametrize(
    ("markdown", "plain", "as_html"),
    [
        (
            "**bold** and *it* and _it_",
            "bold and it and it",
            "<strong>bold</strong> and <em>it</em> and <em>it</em>",
        ),
        ("new_checkout_flag is on", "new_checkout_flag is on", "new_checkout_flag is on"),
        ("keys like my_flag_ stay", "keys like my_flag_ stay", "keys like my_flag_ stay"),
        ("2 * 3 * 4", "2 * 3 * 4", "2 * 3 * 4"),
        (r"\*not em\* and \_not\_", "*not em* and _not_", "*not em* and _not_"),
        ("`a*b* <c>`", "a*b* <c>", "<code>a*b* &lt;c&gt;</code>"),
        ("[**Ana**](/members/ana)", "Ana", f'<a href="{LD}/members/ana"><strong>Ana</strong></a>'),
    ],
)
def test_title_markdown_as_plain_text_and_html(markdown: str, plain: str, as_html: str) -> None:
    context = context_of({"accesses": [], "title": markdown})
    assert (context.title, context.title_html) == (plain, as_html)


def test_details_fall_back_to_the_short_description_without_markup() -> None:
    context = context_of({"accesses": [], "shortDescription": "## Changed\n+ the **default** rule"})
    assert context.details == "Changed\n- the default rule"
    assert context.details_markdown == "## Changed\n+ the **default** rule"


@pytest.mark.parametrize(
    ("href", "link_base_url", "url"),
    [
        ("/web/production/features/x", LD, f"{LD}/web/production/features/x"),
        ("/web/x", "https://ld.example.com/prefix/", "https://ld.example.com/prefix/web/x"),
        ("web/x", LD, f"{LD}/web/x"),
        ("/web/x", None, None),
        ("https://other.example/x", LD, "https://other.example/x"),
        ("HTTP://other.example/x", None, "HTTP://other.example/x"),
        ("javascript:alert(1)", LD, None),
        ("mailto:ana@example.com", LD, None),
        ("http://[::1", LD, None),
        ("", LD, None),
    ],
)
def test_link_to_the_change_is_absolute_or_none(
    href: str, link_base_url: str | None, url: str | None
) -> None:
    entry = {"accesses": [], "_links": {"site": {"href": href}}}
    assert context_of(entry, link_base_url).url == url


@pytest.mark.parametrize("links", [None, {}, {"site": "x"}, {"site": {"href": 5}}])
def test_no_usable_site_link_means_no_url(links: object) -> None:
    assert context_of({"accesses": [], "_links": links}).url is None


@pytest.mark.parametrize(
    "entry",
    [
        {"accesses": [access("acct")]},
        {"accesses": [access(":::;,")]},
        {"accesses": [access("proj/:env/")]},
        {"accesses": [access("env/prod")]},
        {"accesses": [], "target": {"name": 5}, "member": {}, "title": "", "tags": []},
        {"accesses": [], "title": "[unclosed](", "description": "**"},
        {"accesses": [], "date": 253_402_300_799_999},
    ],
)
def test_build_context_accepts_every_parsed_entry(entry: dict[str, Any]) -> None:
    context = context_of(entry)
    assert context.title
    assert context.rfc3339.endswith("Z")


def test_context_tags_come_from_the_entry() -> None:
    assert context_of({"accesses": [], "tags": ["deploy", "web"]}).tags == ("deploy", "web")


@pytest.mark.parametrize(
    ("member", "display_name"),
    [
        (Member(email="ana@example.com", first_name="Ana", last_name="Lopez"), "Ana Lopez"),
        (Member(email="ana@example.com", first_name=None, last_name="Lopez"), "Lopez"),
        (Member(email="ana@example.com", first_name="Ana", last_name=""), "Ana"),
        (Member(email="ana@example.com", first_name=None, last_name=None), "ana@example.com"),
        (Member(email=None, first_name=None, last_name=None), "Someone"),
    ],
)
def test_member_display_name(member: Member, display_name: str) -> None:
    assert member.display_name == display_name


@pytest.mark.parametrize(
    ("date_ms", "rfc3339", "date_s"),
    [
        (0, "1970-01-01T00:00:00.000Z", 0.0),
        (1_700_000_000_123, "2023-11-14T22:13:20.123Z", 1_700_000_000.123),
        (253_402_300_799_999, "9999-12-31T23:59:59.999Z", 253_402_300_799.999),
    ],
)
def test_timestamps_in_every_unit(date_ms: int, rfc3339: str, date_s: float) -> None:
    context = context_of({"accesses": [], "date": date_ms})
    assert (context.date_ms, context.rfc3339, context.date_s) == (date_ms, rfc3339, date_s)


# --- validation_entry -----------------------------------------------------------------------


def test_validation_entry_passes_parse_entry_unchanged_with_a_new_id_each_time() -> None:
    entry = validation_entry(NOW_MS)
    assert parse_entry(entry, now_ms=0) == entry
    assert entry["date"] == NOW_MS
    assert re.fullmatch(re.escape(VALIDATION_EVENT_ID_PREFIX) + "[0-9a-f]{16}", entry["_id"])
    assert validation_entry(NOW_MS)["_id"] != entry["_id"]


def test_validation_entry_context_reads_well() -> None:
    context = build_context(parse_entry(validation_entry(NOW_MS), now_ms=0))
    assert context.title == "pushgate connection test"
    assert context.name == "pushgate connection test"
    assert (context.kind, context.key) == ("flag", "pushgate-connection-test")
    assert context.action == "validateConnection"
    assert context.member is not None
    assert context.member.display_name == "pushgate"
    assert context.comment is not None
    assert "ignored" in context.comment
    assert context.environment == Environment(key="test", name="test", tags=())
    assert context.project is not None
    assert context.project.key == "pushgate"


@pytest.mark.parametrize(
    ("resource", "name", "project_name", "environment_name"),
    [
        ("proj/web", "Web shop", "Web shop", None),
        ("proj/web:env/staging", "Staging", "web", "Staging"),
        ("proj/web:env/staging:flag/x", "X flag", "web", "staging"),
    ],
)
def test_the_entry_name_names_a_changed_project_or_environment(
    resource: str, name: str, project_name: str, environment_name: str | None
) -> None:
    context = context_of({"name": name, "accesses": [{"action": "update", "resource": resource}]})
    assert context.project is not None
    assert context.project.name == project_name
    assert (context.environment.name if context.environment else None) == environment_name
