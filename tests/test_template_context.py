"""The template context of LaunchDarkly's integration framework, derived from an entry."""

from __future__ import annotations

from typing import Any

from pushgate.events import build_context, parse_entry, validation_entry

NOW = 1_700_000_000_000

FLAG_ENTRY: dict[str, Any] = {
    "_id": "5e38c13206121d8aaf15392c",
    "_accountId": "569f514156e003339cfd3917",
    "date": 1_580_777_778_959,
    "kind": "flag",
    "name": "Demo flag",
    "accesses": [{"action": "updateTags", "resource": "proj/default;web:env/*:flag/demo-flag"}],
    "titleVerb": "updated the flag",
    "description": (
        "* Changed the flag to be hidden from client\\-side SDKs\n\n* Added tag `demo`\n"
    ),
    "comment": "This will propagate to all environments",
    "tags": ["demo"],
    "customProperties": {
        "jira": {"name": "Jira", "values": ["PG-1", 7]},
        "broken": "not an object",
    },
    "project": {"key": "default", "name": "The big project"},
    "member": {
        "_id": "569f514183f2164430000002",
        "_links": {
            "self": {"href": "/api/v2/members/569f514183f2164430000002", "type": "application/json"}
        },
        "email": "henrietta@example.com",
        "firstName": "Henrietta",
        "lastName": "Powell",
    },
    "target": {
        "_id": "5e38c13206121d8aaf10000c",
        "name": "Demo flag",
        "_links": {"site": {"href": "/default/~/features/demo-flag", "type": "text/html"}},
    },
    "_links": {
        "self": {"href": "/api/v2/auditlog/5e38c13206121d8aaf15392c", "type": "application/json"},
        "site": {"href": "/default/~/features/demo-flag", "type": "text/html"},
        "details": {"href": "https://app.example.com/settings/history/5e38c/details"},
        "evil": {"href": "javascript:alert(1)"},
    },
}


def context_of(entry: dict[str, Any], **options: Any) -> dict[str, Any]:
    return build_context(parse_entry(entry, now_ms=NOW), **options).template_context()


def test_a_full_flag_entry_gives_the_frameworks_context() -> None:
    context = context_of(FLAG_ENTRY, link_base_url="https://app.example.com/")

    assert context == {
        "_links": {
            "self": {
                "href": "https://app.example.com/api/v2/auditlog/5e38c13206121d8aaf15392c",
                "type": "application/json",
            },
            "site": {
                "href": "https://app.example.com/default/~/features/demo-flag",
                "type": "text/html",
            },
            "details": {"href": "https://app.example.com/settings/history/5e38c/details"},
        },
        "baseURL": "https://app.example.com",
        "_id": "5e38c13206121d8aaf15392c",
        "_accountId": "569f514156e003339cfd3917",
        "timestamp": {
            "milliseconds": 1_580_777_778_959,
            "seconds": 1_580_777_778,
            "rfc3339": "2020-02-04T00:56:18Z",
            "simple": "2020-02-04 00:56:18",
        },
        "kind": "flag",
        "name": "Demo flag",
        "key": "demo-flag",
        "details": {
            "plainText": (
                "- Changed the flag to be hidden from client-side SDKs\n\n- Added tag demo"
            ),
            "markdown": FLAG_ENTRY["description"],
            "html": (
                "<ul><li>Changed the flag to be hidden from client-side SDKs</li></ul>\n"
                "<ul><li>Added tag <code>demo</code></li></ul>"
            ),
        },
        "comment": "This will propagate to all environments",
        "project": {
            "name": "The big project",
            "key": "default",
            "tags": ["web"],
            "environment": {"name": "All environments", "key": "~", "tags": []},
        },
        "tags": ["demo"],
        "customProperties": {"jira": {"name": "Jira", "values": ["PG-1"]}},
        "member": {
            "_links": {
                "self": {
                    "href": "https://app.example.com/api/v2/members/569f514183f2164430000002",
                    "type": "application/json",
                }
            },
            "_id": "569f514183f2164430000002",
            "email": "henrietta@example.com",
            "emailLocalPart": "henrietta",
            "firstName": "Henrietta",
            "lastName": "Powell",
            "displayName": "Henrietta Powell",
        },
        "titleVerb": "updated the flag",
        "verbKind": "updateTags",
        "title": {
            "plainText": "Henrietta Powell updated the flag Demo flag in All environments",
            "markdown": (
                "Henrietta Powell updated the flag "
                "[Demo flag](https://app.example.com/default/~/features/demo-flag) "
                "in All environments"
            ),
            "html": (
                "Henrietta Powell updated the flag "
                '<a href="https://app.example.com/default/~/features/demo-flag">Demo flag</a> '
                "in All environments"
            ),
        },
        "target": {
            "_links": {
                "site": {
                    "href": "https://app.example.com/default/~/features/demo-flag",
                    "type": "text/html",
                }
            },
            "name": "Demo flag",
            "_id": "5e38c13206121d8aaf10000c",
        },
    }


def test_an_entry_that_tells_little_gives_empty_strings_not_missing_fields() -> None:
    context = context_of({"accesses": [{"action": "createSegment", "resource": "segment/beta"}]})

    assert context["_links"] == {}
    assert context["baseURL"] == ""
    assert context["_accountId"] == ""
    assert context["comment"] == ""
    assert context["titleVerb"] == ""
    assert context["key"] == "beta"
    assert context["details"] == {"plainText": "", "markdown": "", "html": ""}
    assert context["project"] == {
        "name": "",
        "key": "",
        "tags": [],
        "environment": {"name": "", "key": "", "tags": []},
    }
    assert context["member"] == {
        "_links": {},
        "_id": "",
        "email": "",
        "emailLocalPart": "",
        "firstName": "",
        "lastName": "",
        "displayName": "",
    }
    assert context["target"] == {"_links": {}, "name": "beta", "_id": ""}
    assert context["customProperties"] == {}
    assert context["title"]["plainText"] == "Someone createSegment beta"
    assert context["timestamp"]["milliseconds"] == NOW


def test_member_events_have_no_key() -> None:
    context = context_of(
        {"kind": "member", "accesses": [{"action": "updateRole", "resource": "member/61"}]}
    )

    assert "key" not in context
    assert context["kind"] == "member"


def test_relative_links_are_dropped_without_a_base_url() -> None:
    context = context_of(FLAG_ENTRY)

    assert context["_links"] == {
        "details": {"href": "https://app.example.com/settings/history/5e38c/details"}
    }
    assert context["target"]["_links"] == {}


def test_an_environment_event_names_its_project_and_environment() -> None:
    context = context_of(
        {
            "kind": "environment",
            "name": "Staging",
            "accesses": [{"action": "updateColor", "resource": "proj/web:env/staging;eu"}],
            "project": {"key": "web", "name": "Web shop"},
        }
    )

    assert context["project"] == {
        "name": "Web shop",
        "key": "web",
        "tags": [],
        "environment": {"name": "Staging", "key": "staging", "tags": ["eu"]},
    }
    assert context["verbKind"] == "updateColor"


def test_the_validation_event_is_known_as_such() -> None:
    event = build_context(validation_entry(NOW))

    assert event.is_validation
    assert not build_context(parse_entry(FLAG_ENTRY, now_ms=NOW)).is_validation


def test_details_html_keeps_paragraphs_and_escapes() -> None:
    entry = {**FLAG_ENTRY, "description": "## Rules\nFirst <b>line</b>\nsecond\n\n- a\n- **b**"}

    html = context_of(entry)["details"]["html"]

    assert (
        html == "<p>Rules\nFirst &lt;b&gt;line&lt;/b&gt;\nsecond</p>\n"
        "<ul><li>a</li><li><strong>b</strong></li></ul>"
    )
