"""Handlebars with the integration framework's helpers: built-ins as Handlebars.js renders
them, the framework's helpers, JSON escaping; tables of cases."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pushgate.handlebars import (
    TemplateError,
    compile_template,
    format_with_offset,
    is_json_template,
    js_strictly_equal,
    json_escape,
    path_encode,
    query_encode,
)


def render(source: str, context: dict[str, Any] | None = None) -> str:
    return compile_template(source, name="test").render(context or {})


BUILT_INS = [
    (
        "{{#each xs}}{{this}}{{#unless @last}}, {{/unless}}{{/each}}",
        {"xs": ["a", "b", "c"]},
        "a, b, c",
    ),
    ("{{#each xs}}{{@index}}{{#if @first}}!{{/if}}{{/each}}", {"xs": ["a", "b"]}, "0!1"),
    ("{{#each o}}{{@key}}={{this}};{{/each}}", {"o": {"k": "v", "j": "w"}}, "k=v;j=w;"),
    ("{{#each xs}}x{{else}}none{{/each}}", {"xs": []}, "none"),
    ("{{#each xs}}{{../p}}{{this}}{{/each}}", {"xs": ["a"], "p": "P"}, "Pa"),
    ("{{#with a}}{{b}}/{{../c}}{{/with}}", {"a": {"b": "x"}, "c": "C"}, "x/C"),
    ("{{#with a}}{{b}}{{else}}no a{{/with}}", {}, "no a"),
    ("a  {{~#if t~}}  b  {{~/if~}}  c", {"t": True}, "abc"),
    ("[\n  {{~#each xs}}\n  {{this}}\n  {{~/each}}\n]", {"xs": [1, 2]}, "[\n  1\n  2\n]"),
    ("a{{!-- has }} inside --}}b{{! short }}c", {}, "abc"),
    ("{{#if a}}A{{else if b}}B{{else}}C{{/if}}", {"b": 1}, "B"),
    ("{{#if xs}}y{{else}}n{{/if}}", {"xs": []}, "n"),
    ("{{#if d}}y{{else}}n{{/if}}", {"d": {}}, "y"),
    ("{{#unless a}}u{{/unless}}", {}, "u"),
    ("{{v}}", {"v": "&<>\"'`="}, "&amp;&lt;&gt;&quot;&#x27;&#x60;&#x3D;"),
    ("{{{v}}}|{{&v}}", {"v": "&<"}, "&<|&<"),
    ("[{{missing.deeper}}]", {}, "[]"),
    ("{{t}} {{f}} {{n}}", {"t": True, "f": False, "n": 1580777778959}, "true false 1580777778959"),
    ("{{base-url}}", {"base-url": "u"}, "u"),
    ("{{values.[0]}}", {"values": ["first"]}, "first"),
    ("{{#each xs}}{{name}}{{/each}}", {"xs": [{"name": "a"}, {"name": "b"}]}, "ab"),
    ("a\n{{#if t}}\nb\n{{/if}}\nc", {"t": True}, "a\nb\nc"),
]


@pytest.mark.parametrize(("source", "context", "expected"), BUILT_INS)
def test_built_ins_render_as_handlebars_js(
    source: str, context: dict[str, Any], expected: str
) -> None:
    assert render(source, context) == expected


HELPERS = [
    ("{{#equal k 'flag'}}F{{else}}N{{/equal}}", {"k": "flag"}, "F"),
    ("{{#equal k 'flag'}}F{{else}}N{{/equal}}", {"k": "project"}, "N"),
    ("{{#equalWithElse n 1}}one{{else}}other{{/equalWithElse}}", {"n": 1}, "one"),
    ("{{#equalWithElse n 1}}one{{else}}other{{/equalWithElse}}", {"n": "1"}, "other"),
    ("{{#equal t 1}}y{{else}}n{{/equal}}", {"t": True}, "n"),
    ("{{#each xs}}{{#equal this 'b'}}[{{this}}]{{/equal}}{{/each}}", {"xs": ["a", "b"]}, "[b]"),
    ("{{#with o}}{{#equal k 'x'}}{{v}}{{/equal}}{{/with}}", {"o": {"k": "x", "v": "V"}}, "V"),
    ("{{pathEncode p}}", {"p": "/a b/ü?x=1#f"}, "/a%20b/%C3%BC?x&#x3D;1#f"),
    ("{{{pathEncode p}}}", {"p": "/a b/ü?x=1#f"}, "/a%20b/%C3%BC?x=1#f"),
    ("{{queryEncode q}}", {"q": "a b&c/d=é"}, "a%20b%26c%2Fd%3D%C3%A9"),
    ("{{queryEncode missing}}|{{pathEncode missing}}", {}, "|"),
    ("{{{basicAuthHeaderValue 'user' pass}}}", {"pass": "p@ss:wörd"}, "Basic dXNlcjpwQHNzOnfDtnJk"),
    ("{{{basicAuthHeaderValue u}}}", {"u": "x"}, "Basic eDo="),
    ("{{formatWithOffset ms 3600 'milliseconds'}}", {"ms": 1580777778959}, "1580781378959"),
    ("{{formatWithOffset ms 0 'seconds'}}", {"ms": 1580777778500}, "1580777779"),
    ("{{formatWithOffset ms 0 'seconds'}}", {"ms": 1580777778499}, "1580777778"),
    ("{{formatWithOffset ms -3600 'rfc3339'}}", {"ms": 1580777778959}, "2020-02-03T23:56:18.959Z"),
    ("{{formatWithOffset ms '7200' 'rfc3339'}}", {"ms": 1580777778959}, "2020-02-04T02:56:18.959Z"),
    ("{{formatWithOffset ms 0 'simple'}}", {"ms": 1580777778959}, "2020-02-04 12:56:18"),
    ("{{formatWithOffset ms 46800 'simple'}}", {"ms": 1580777778959}, "2020-02-04 1:56:18"),
    ("{{formatWithOffset ms 0 'other'}}", {"ms": 5}, "5"),
]


@pytest.mark.parametrize(("source", "context", "expected"), HELPERS)
def test_framework_helpers(source: str, context: dict[str, Any], expected: str) -> None:
    assert render(source, context) == expected


@pytest.mark.parametrize(
    ("left", "right", "equal"),
    [
        ("a", "a", True),
        (1, 1.0, True),
        (1, "1", False),
        (True, 1, False),
        (False, 0, False),
        (None, None, True),
        (None, "", False),
        ({}, {}, False),  # objects compare by identity in JavaScript
    ],
)
def test_equal_is_javascript_strict_equality(left: Any, right: Any, equal: bool) -> None:
    assert js_strictly_equal(left, right) is equal


def test_encode_helpers_match_encode_uri_and_encode_uri_component() -> None:
    reserved = ";,/?:@&=+$#"
    marks = "-_.!~*'()"
    assert path_encode(reserved + marks) == reserved + marks
    assert query_encode(marks) == marks
    assert query_encode(reserved) == "%3B%2C%2F%3F%3A%40%26%3D%2B%24%23"
    assert path_encode("%") == "%25"
    assert query_encode(True) == "true"
    assert query_encode(2.0) == "2"


def test_format_with_offset_refuses_what_is_not_a_number() -> None:
    with pytest.raises(TemplateError, match="is not a number"):
        format_with_offset("soon", 0, "rfc3339")


def test_json_escape_escapes_every_string_without_quotes() -> None:
    value = {"s": 'a"b\\c\nd\te\u0001', "n": 42, "b": False, "l": ['x"', {"k": "\\"}], "z": None}

    escaped = json_escape(value)

    assert escaped == {
        "s": 'a\\"b\\\\c\\nd\\te\\u0001',
        "n": 42,
        "b": False,
        "l": ['x\\"', {"k": "\\\\"}],
        "z": None,
    }
    assert json.loads('"' + escaped["s"] + '"') == value["s"]


def test_json_escape_keeps_non_ascii_and_escapes_lone_surrogates() -> None:
    assert json_escape("ü ✓") == "ü ✓"
    assert json_escape("\ud800") == "\\ud800"


@pytest.mark.parametrize(
    ("path", "is_json"),
    [
        ("t.json", True),
        ("t.JSON.hbs", True),
        ("t.json.hbs", True),
        ("t.hbs", False),
        ("t.txt", False),
    ],
)
def test_json_templates_are_known_by_their_file_name(path: str, is_json: bool) -> None:
    assert is_json_template(path) is is_json


@pytest.mark.parametrize("source", ["{{#if a}}open", "{{/each}}", "{{#each}}{{/each}}"])
def test_broken_templates_raise_template_error_naming_the_template(source: str) -> None:
    with pytest.raises(TemplateError, match=r"^test: "):
        render(source, {"a": 1})


def test_an_unknown_helper_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match='Missing helper: "shout"'):
        render("{{shout name}}", {"name": "x"})
