"""Handlebars templates with the helpers and conventions of LaunchDarkly's integration framework.

Rendering is done by `dotpromptz-handlebars`, a pure-Python Handlebars that takes Handlebars.js
as its reference (built-ins `if`, `unless`, `each` with `@index`/`@first`/`@last`/`@key`,
`with`, `lookup`, `else if`, `../` paths, `~` whitespace control, `{{!-- --}}` comments,
subexpressions, `{{ }}` HTML-escaping `& < > " ' \\` =`, `{{{ }}}` raw). This module adds:

- the framework's helpers: `equal` and `equalWithElse` (block helpers on strict equality, with
  `{{else}}`), `pathEncode` (JavaScript `encodeURI`), `queryEncode` (`encodeURIComponent`),
  `basicAuthHeaderValue user pass` (`Basic base64(user:pass)`) and
  `formatWithOffset ms offsetSeconds format`;
- `json_escape`, which JSON-escapes every string of a context for `.json` / `.json.hbs`
  templates, the way the framework does before it renders them;
- one error type, `TemplateError`, for templates that do not compile or fail while rendering.

Where JavaScript would print `undefined` or `null` for a missing argument of a helper
(`{{queryEncode comment}}` on an event without a comment), the helpers here use the empty
string, as LaunchDarkly's production renderer (Go) does. Missing paths render as "", as in
Handlebars without `strict`. Everything here is pure.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from dotpromptz_handlebars import Handlebars, HelperOptions

# What JavaScript's encodeURI and encodeURIComponent leave as they are, besides letters, digits
# and `-_.~` (which `urllib.parse.quote` never encodes).
_URI_SAFE = ";,/?:@&=+$!*'()#"
_URI_COMPONENT_SAFE = "!*'()"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# JavaScript Dates span ±8.64e15 ms around the epoch; Python's datetime a little less.
_MAX_DATE_MS = 253_402_300_799_999
_MIN_DATE_MS = -62_135_596_800_000
# A 12-hour clock shows 12, not 0, at noon and midnight.
_HOURS_ON_A_CLOCK = 12


class TemplateError(ValueError):
    """A template does not compile, or failed while rendering; the message says where and why."""


def js_string(value: Any) -> str:
    """`value` as JavaScript's `String()` writes it; None (null or missing) is "" here."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, Mapping):
        return "[object Object]"
    if isinstance(value, list | tuple):
        return ",".join(js_string(item) for item in value)
    return str(value)


def js_strictly_equal(left: Any, right: Any) -> bool:
    """JavaScript's `===`: no conversions (`1 !== "1"`, `true !== 1`); objects by identity."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left is right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, str) and isinstance(right, str):
        return left == right
    if left is None or right is None:
        return left is None and right is None
    return left is right


def path_encode(value: Any) -> str:
    """JavaScript's `encodeURI`: percent-encode everything but URI syntax characters."""
    return quote(_well_formed(js_string(value)), safe=_URI_SAFE)


def query_encode(value: Any) -> str:
    """JavaScript's `encodeURIComponent`: percent-encode everything but `A-Za-z0-9-_.!~*'()`."""
    return quote(_well_formed(js_string(value)), safe=_URI_COMPONENT_SAFE)


def basic_auth_header_value(username: Any, password: Any) -> str:
    """`Basic ` + base64 of `username:password` (UTF-8), an HTTP Basic `Authorization` value."""
    pair = f"{js_string(username)}:{js_string(password)}".encode(errors="surrogatepass")
    return "Basic " + base64.b64encode(pair).decode()


def format_with_offset(milliseconds: Any, offset_seconds: Any, format_name: Any) -> int | str:
    """A millisecond timestamp shifted by `offset_seconds`, in one of the framework's formats.

    `milliseconds` (an integer), `seconds` (rounded half up), `rfc3339`
    (`2020-02-04T01:56:18.959Z`, JavaScript's `toISOString`) or `simple` (`yyyy-mm-dd h:MM:ss`
    as the framework's helper writes it: the hour on a 12-hour clock without a leading zero).
    Times are UTC. Any other format gives milliseconds, as the framework's helper does.
    """
    shifted = math.trunc(
        _number(milliseconds, "timestamp") + 1000 * _number(offset_seconds, "offset")
    )
    if format_name == "seconds":
        return math.floor(shifted / 1000 + 0.5)  # Math.round: halves go up
    if format_name not in ("rfc3339", "simple"):
        return shifted
    if not _MIN_DATE_MS <= shifted <= _MAX_DATE_MS:
        raise TemplateError(f"formatWithOffset: {shifted} ms is outside the dates it can write")
    moment = _EPOCH + timedelta(milliseconds=shifted)
    if format_name == "rfc3339":
        return f"{moment:%Y-%m-%dT%H:%M:%S}.{shifted % 1000:03d}Z"
    hour = moment.hour % _HOURS_ON_A_CLOCK or _HOURS_ON_A_CLOCK
    return f"{moment:%Y-%m-%d} {hour}:{moment:%M:%S}"


def json_escape(value: Any) -> Any:
    """Every string inside `value` JSON-escaped without its quotes, as `JSON.stringify` would.

    So `{{{title.plainText}}}` inside `"..."` in a JSON template stays valid JSON whatever the
    title holds. Mappings become dicts and sequences lists; other values are kept.
    """
    if isinstance(value, str):
        escaped = json.dumps(value, ensure_ascii=False)[1:-1]
        return _LONE_SURROGATE.sub(lambda match: f"\\u{ord(match[0]):04x}", escaped)
    if isinstance(value, Mapping):
        return {key: json_escape(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_escape(item) for item in value]
    return value


def is_json_template(path: str) -> bool:
    """Whether the framework treats a template file as JSON (`.json` or `.json.hbs`)."""
    lowered = path.lower()
    return lowered.endswith((".json", ".json.hbs"))


@dataclass(frozen=True, slots=True)
class Template:
    """One compiled template; `name` says where it came from in error messages."""

    name: str
    _render: Callable[[dict[str, Any]], str]

    def render(self, context: Mapping[str, Any]) -> str:
        """Render against `context`; `TemplateError` names this template and the problem."""
        try:
            return self._render(dict(context))
        except TemplateError as error:
            raise TemplateError(f"{self.name}: {error}") from None
        except (ValueError, TypeError, KeyError, IndexError, RecursionError) as error:
            raise TemplateError(f"{self.name}: {error}") from None


def compile_template(source: str, *, name: str) -> Template:
    """Compile Handlebars `source` with the framework's helpers; `TemplateError` when invalid."""
    try:
        render = _handlebars().compile(source)
    except (ValueError, RecursionError) as error:
        raise TemplateError(f"{name}: {error}") from None
    return Template(name, render)


def _number(value: Any, what: str) -> float:
    """JavaScript's arithmetic reading of a helper argument: numbers, or numeric strings."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip() or 0)
        except ValueError:
            pass
    raise TemplateError(f"formatWithOffset: the {what} {js_string(value)!r} is not a number")


def _well_formed(text: str) -> str:
    """A lone surrogate cannot be percent-encoded (JavaScript throws a URIError)."""
    if _LONE_SURROGATE.search(text):
        raise TemplateError("cannot URI-encode a string holding a lone surrogate")
    return text


def _block(options: HelperOptions, condition: bool) -> str:
    if not options.is_block:
        return ""
    return options.fn(options.context) if condition else options.inverse(options.context)


def _arguments(args: Sequence[Any], count: int) -> list[Any]:
    """The first `count` positional arguments, None for those the call left out."""
    return [*args[:count], *([None] * (count - len(args)))]


def _equal(args: list[Any], options: HelperOptions) -> str:
    left, right = _arguments(args, 2)
    return _block(options, js_strictly_equal(left, right))


HELPERS: Mapping[str, Callable[[list[Any], HelperOptions], Any]] = {
    "equal": _equal,
    # LaunchDarkly's Go renderer has its own `equal`, without {{else}}; templates written for it
    # use this name. Both mean the same here.
    "equalWithElse": _equal,
    "pathEncode": lambda args, _: path_encode(*_arguments(args, 1)),
    "queryEncode": lambda args, _: query_encode(*_arguments(args, 1)),
    "basicAuthHeaderValue": lambda args, _: basic_auth_header_value(*_arguments(args, 2)),
    "formatWithOffset": lambda args, _: format_with_offset(*_arguments(args, 3)),
}


@functools.cache
def _handlebars() -> Handlebars:
    engine = Handlebars()
    for name, helper in HELPERS.items():
        engine.register_helper(name, helper)
    return engine
