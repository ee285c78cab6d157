"""Events: validate an incoming audit-log entry and derive the context every adapter renders from.

An event is a LaunchDarkly-style audit-log entry. Only `accesses` (`[{action, resource}]`) decides
routing; `parse_entry` checks the types of the fields pushgate knows, fills `_id`, `date` and
`kind` when they are missing and keeps every other key unchanged. `build_context` turns an
accepted entry into an `EventContext`: timestamps in several units, title and details as plain
text, markdown and HTML, the project and environment named by the first access's resource, and an
absolute link to the change. `EventContext.template_context()` gives the same in the shape that
LaunchDarkly's integration-framework templates expect (docs/manifests.md lists every field and
where it comes from). Everything here is pure.
"""

from __future__ import annotations

import html
import json
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from types import MappingProxyType
from typing import Any, NamedTuple, NoReturn
from urllib.parse import urlsplit

from pushgate.errors import InvalidRequest
from pushgate.limits import DEFAULT_EVENT_SIZE_LIMIT, check_text
from pushgate.policy import Access

# One POST is committed in one transaction and held in memory whole; this keeps both bounded.
MAX_BATCH = 1000
# `_id` and `kind` are the width of their columns. An `_id` travels in headers (`webhook-id`),
# so it is visible ASCII; LaunchDarkly's are 24 hex characters.
ID_LIMIT = 64
KIND_LIMIT = 64
_ID = re.compile(rf"[\x21-\x7e]{{1,{ID_LIMIT}}}")
# Accesses of one entry, and the length of an action or resource: LaunchDarkly entries have a
# handful, of a few dozen characters.
MAX_ACCESSES = 100
ACCESS_TEXT_LIMIT = 1024
VALIDATION_EVENT_ID_PREFIX = "pushgate-validation-"

# LaunchDarkly ids are 24 hex characters; generated ids look the same (12 random bytes).
_ID_BYTES = 12
# 16 hex characters: two validation events never share an id in practice.
_VALIDATION_ID_BYTES = 8
# 9999-12-31T23:59:59.999Z: a later `date` cannot be written as RFC 3339 by `datetime`.
_MAX_DATE_MS = 253_402_300_799_999
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# How LaunchDarkly's template context names a change to every environment (`env/*`).
ALL_ENVIRONMENTS_KEY = "~"
ALL_ENVIRONMENTS_NAME = "All environments"

# LaunchDarkly spells these resource types out when it names an entry's kind.
_KIND_OF_TYPE = {"proj": "project", "env": "environment", "acct": "account"}
_STRING_FIELDS = ("title", "titleVerb", "name", "description", "shortDescription", "comment")
_MEMBER_FIELDS = ("email", "firstName", "lastName")
_OBJECT_FIELDS = ("target", "_links")
_NAMED_FIELDS = ("project", "environment")
# A link to the change must open a page; links inside a title may also write to someone.
_PAGE_SCHEMES = frozenset({"http", "https"})
_TITLE_LINK_SCHEMES = _PAGE_SCHEMES | {"mailto"}

# Inline markdown, enough for LaunchDarkly titles and descriptions: backslash escapes of ASCII
# punctuation (LaunchDarkly writes `client\-side`), `code`, [links](x),
# **strong**, *em* and _em_ (not inside words, so `new_checkout_flag` stays as it is).
_INLINE = re.compile(
    r"\\(?P<escaped>[!-/:-@\[-`{-~])"
    r"|`(?P<code>[^`\n]+)`"
    r"|\[(?P<label>(?:\\.|[^\]\\\n])*)\]\((?P<href>[^)\s]*)\)"
    r"|\*\*(?P<strong>[^*\s](?:[^*\n]*[^*\s])?)\*\*"
    r"|(?<![\w*])\*(?P<em_star>[^*\s](?:[^*\n]*[^*\s])?)\*(?![\w*])"
    r"|(?<![\w_])_(?P<em_under>[^_\s](?:[^_\n]*[^_\s])?)_(?![\w_])"
)
_WRAPPERS = (("strong", "strong"), ("em_star", "em"), ("em_under", "em"))
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]])")
_LIST_MARKER = re.compile(r"^([ \t]*)[*+-][ \t]+", re.MULTILINE)
_HEADING = re.compile(r"^#{1,6}[ \t]+", re.MULTILINE)


def parse_entry(
    raw: object, *, where: str = "body", now_ms: int, max_bytes: int = DEFAULT_EVENT_SIZE_LIMIT
) -> dict[str, Any]:
    """Validate one audit-log entry and return it normalised, as a new dict.

    `_id` becomes 1 to `ID_LIMIT` visible ASCII characters (24 random hex characters when
    absent), `date` integer Unix milliseconds (`now_ms` when absent), `kind` a string of at most
    `KIND_LIMIT` characters (from the first access's resource when absent) and `accesses` a list
    of at most `MAX_ACCESSES` `{action, resource}` objects. Known optional fields must have
    their types; unknown keys are kept. The whole entry, as compact JSON, is at most `max_bytes`.
    `InvalidRequest` names the place, starting with `where`.
    """
    if not isinstance(raw, dict):
        _fail(where, "must be an object")
    entry: dict[str, Any] = dict(raw)
    entry["_id"] = _parse_id(raw.get("_id"), f"{where}._id")
    entry["date"] = _parse_date(raw.get("date"), f"{where}.date", now_ms)
    entry["accesses"] = accesses = _parse_accesses(raw.get("accesses"), f"{where}.accesses")
    kind = raw.get("kind")
    if kind is None:
        entry["kind"] = _default_kind(accesses[0]["resource"] if accesses else None)[:KIND_LIMIT]
    else:
        check_text(kind, f"{where}.kind", limit=KIND_LIMIT)
    for field in _STRING_FIELDS:
        _check_optional_str(raw.get(field), f"{where}.{field}")
    for field in (*_OBJECT_FIELDS, "member", *_NAMED_FIELDS):
        if raw.get(field) is not None and not isinstance(raw[field], dict):
            _fail(f"{where}.{field}", "must be an object")
    for field in _MEMBER_FIELDS:
        _check_optional_str((raw.get("member") or {}).get(field), f"{where}.member.{field}")
    for named in _NAMED_FIELDS:
        for field in ("key", "name"):
            _check_optional_str((raw.get(named) or {}).get(field), f"{where}.{named}.{field}")
    tags = raw.get("tags")
    if tags is not None and not isinstance(tags, list):
        _fail(f"{where}.tags", "must be a list of strings")
    for index, tag in enumerate(tags or []):
        if not isinstance(tag, str):
            _fail(f"{where}.tags[{index}]", "must be a string")
    size = len(json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode())
    if size > max_bytes:
        _fail(
            where,
            f"{size} bytes as JSON, more than the event size limit of {max_bytes} "
            "(PUSHGATE_EVENT_SIZE_LIMIT)",
        )
    return entry


def parse_batch(
    raw: object, *, now_ms: int, max_bytes: int = DEFAULT_EVENT_SIZE_LIMIT
) -> list[dict[str, Any]]:
    """Validate a POSTed body: one entry, or `{"items": [entry, ...]}` with 1..MAX_BATCH entries,
    each at most `max_bytes` as JSON.

    Places in errors are `body` for a single entry and `items[i]` in a batch. When several entries
    of a batch share an `_id`, the first is kept.
    """
    if not isinstance(raw, dict) or "items" not in raw:
        return [parse_entry(raw, where="body", now_ms=now_ms, max_bytes=max_bytes)]
    items = raw["items"]
    if not isinstance(items, list):
        _fail("body.items", "must be a list of entries")
    if not 1 <= len(items) <= MAX_BATCH:
        _fail("body.items", f"must hold 1 to {MAX_BATCH} entries, not {len(items)}")
    entries: dict[str, dict[str, Any]] = {}
    for index, item in enumerate(items):
        entry = parse_entry(item, where=f"items[{index}]", now_ms=now_ms, max_bytes=max_bytes)
        entries.setdefault(entry["_id"], entry)
    return list(entries.values())


def accesses_of(entry: Mapping[str, Any]) -> list[Access]:
    """The `(action, resource)` pairs of an accepted entry, for policy matching."""
    return [Access(access["action"], access["resource"]) for access in entry["accesses"]]


@dataclass(frozen=True, slots=True)
class Member:
    """The person who made the change, as far as the entry tells."""

    email: str | None
    first_name: str | None
    last_name: str | None

    @property
    def display_name(self) -> str:
        """First and last name, else whichever is set, else the email, else "Someone"."""
        names = " ".join(name for name in (self.first_name, self.last_name) if name)
        return names or self.email or "Someone"


@dataclass(frozen=True, slots=True)
class Environment:
    """The environment named by the event's resource, with its tags from the specifier."""

    key: str
    name: str
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Project:
    """The project named by the event's resource, and its environment when the resource has one."""

    key: str
    name: str
    tags: tuple[str, ...]
    environment: Environment | None


class StoredEntry(Mapping[str, Any]):
    """An accepted entry as the store keeps it: its compact JSON, parsed on first use.

    Read-only. A webhook sends the JSON as it is, so most deliveries never parse it.
    """

    def __init__(self, event_id: str, stored_json: bytes) -> None:
        self.event_id = event_id
        self.json = stored_json
        self._parsed: dict[str, Any] | None = None

    @property
    def _entry(self) -> dict[str, Any]:
        if self._parsed is None:
            parsed = json.loads(self.json)
            self._parsed = parsed if isinstance(parsed, dict) else {}
        return self._parsed

    def __getitem__(self, key: str) -> Any:
        return self._entry[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entry)

    def __len__(self) -> int:
        return len(self._entry)


class EventContext:
    """What adapters render an event from; `payload` is the accepted entry itself.

    Only the entry is kept; every field is derived from it on first use and then remembered.
    Adapters need a handful of fields each (a webhook only `id` and `payload`), and deriving
    all of them for every delivery showed in profiles of the worker.
    """

    def __init__(self, entry: Mapping[str, Any], *, link_base_url: str | None = None) -> None:
        self.payload: Mapping[str, Any] = (
            entry if isinstance(entry, StoredEntry) else MappingProxyType(dict(entry))
        )
        self.link_base_url = link_base_url

    def __repr__(self) -> str:
        return f"EventContext(id={self.id!r}, kind={self.kind!r}, name={self.name!r})"

    @cached_property
    def _accesses(self) -> list[Mapping[str, Any]]:
        raw = _list(self.payload.get("accesses"))
        return [access for access in raw if isinstance(access, Mapping)]

    @cached_property
    def _resource(self) -> str | None:
        return _str(self._accesses[0].get("resource")) if self._accesses else None

    @cached_property
    def _segments(self) -> list[_Segment]:
        return _segments(self._resource) if self._resource else []

    @cached_property
    def id(self) -> str:
        """The entry's `_id`."""
        if isinstance(self.payload, StoredEntry):
            return self.payload.event_id
        return _str(self.payload.get("_id")) or ""

    @cached_property
    def date_ms(self) -> int:
        """When the change happened, Unix ms (0 when the entry does not say)."""
        date = self.payload.get("date")
        return date if isinstance(date, int) and not isinstance(date, bool) else 0

    @cached_property
    def kind(self) -> str:
        """`flag`, `project`, `environment`, `member`, …: the entry's, else the resource's."""
        return _str(self.payload.get("kind")) or _default_kind(self._resource)

    @cached_property
    def key(self) -> str | None:
        """The key of the changed resource (the last segment of the first access)."""
        return self._segments[-1].key if self._segments else None

    @cached_property
    def name(self) -> str:
        """The entry's `name`, else its target's, else the key, else the kind."""
        target = self.payload.get("target")
        target_name = _str(target.get("name")) if isinstance(target, Mapping) else None
        return _str(self.payload.get("name")) or target_name or self.key or self.kind

    @cached_property
    def actions(self) -> tuple[str, ...]:
        """The actions of the accesses, each once, in order."""
        named = (_str(access.get("action")) for access in self._accesses)
        return tuple(dict.fromkeys(action for action in named if action))

    @cached_property
    def action(self) -> str | None:
        """The first action."""
        return self.actions[0] if self.actions else None

    @cached_property
    def resource(self) -> str | None:
        """The first access's resource specifier, without tags."""
        return _without_tags(self._resource) if self._resource else None

    @cached_property
    def member(self) -> Member | None:
        """Who made the change, when the entry says."""
        return _member(self.payload.get("member"))

    @cached_property
    def comment(self) -> str | None:
        """The entry's comment."""
        return _str(self.payload.get("comment"))

    @cached_property
    def given_title(self) -> str | None:
        """The entry's own markdown `title`, if any."""
        return _str(self.payload.get("title"))

    @cached_property
    def title_verb(self) -> str | None:
        """The entry's `titleVerb` ("turned on the flag")."""
        return _str(self.payload.get("titleVerb"))

    @cached_property
    def is_environment(self) -> bool:
        """Whether the changed resource is an environment itself."""
        return bool(self._segments and self._segments[-1].type == "env")

    @cached_property
    def details_markdown(self) -> str:
        """The entry's description (markdown), "" when none."""
        payload = self.payload
        return _str(payload.get("description")) or _str(payload.get("shortDescription")) or ""

    @cached_property
    def project(self) -> Project | None:
        """The project of the changed resource, and its environment when it has one."""
        return _project(self._segments, self.payload)

    @cached_property
    def url(self) -> str | None:
        """The absolute link to the change (`_links.site`), when there is one."""
        return _site_url(self.payload.get("_links"), self.link_base_url)

    @cached_property
    def payload_json(self) -> bytes:
        """The entry as compact JSON: as stored, or serialized once."""
        if isinstance(self.payload, StoredEntry):
            return self.payload.json
        return json.dumps(dict(self.payload), separators=(",", ":")).encode()

    @cached_property
    def tags(self) -> tuple[str, ...]:
        """The entry's tags."""
        return tuple(tag for tag in _list(self.payload.get("tags")) if isinstance(tag, str))

    @cached_property
    def title_markdown(self) -> str:
        """LaunchDarkly's markdown `title` as given, or one built from member, verb and name."""
        if self.given_title:
            return self.given_title
        verb = self.title_verb or self.action or "changed"
        who = self.member.display_name if self.member else "Someone"
        title = f"{_escape_markdown(who)} {_escape_markdown(verb)} "
        title += _markdown_link(self.name, self.url)
        if self.environment and not self.is_environment:
            title += f" in {_escape_markdown(self.environment.name)}"
        return title

    @cached_property
    def title(self) -> str:
        """Plain text, e.g. "Ana Lopez turned on the flag New checkout in Production"."""
        return _render(self.title_markdown, as_html=False, link_base_url=self.link_base_url)

    @cached_property
    def title_html(self) -> str:
        """HTML with every piece escaped; markdown links become `<a href>`."""
        return _render(self.title_markdown, as_html=True, link_base_url=self.link_base_url)

    @cached_property
    def details(self) -> str:
        """Plain text of the description ("" when none), list markers kept as "- "."""
        plain = _LIST_MARKER.sub(r"\1- ", _HEADING.sub("", self.details_markdown))
        return _render(plain, as_html=False, link_base_url=self.link_base_url)

    @cached_property
    def details_html(self) -> str:
        """HTML of the description: blocks split by blank lines; a block of list items is a
        `<ul>`, any other block a `<p>` (its lines kept); "" when there is no description."""
        blocks = []
        for block in re.split(r"\n[ \t]*\n", self.details_markdown.strip()):
            lines = [line for line in block.splitlines() if line.strip()]
            if not lines:
                continue
            if all(_LIST_MARKER.match(line) for line in lines):
                items = (self._inline_html(_LIST_MARKER.sub("", line)) for line in lines)
                blocks.append("<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>")
            else:
                text = "\n".join(self._inline_html(_HEADING.sub("", line)) for line in lines)
                blocks.append(f"<p>{text}</p>")
        return "\n".join(blocks)

    def _inline_html(self, markdown: str) -> str:
        return _render(markdown.strip(), as_html=True, link_base_url=self.link_base_url)

    def template_context(self) -> dict[str, Any]:
        """The context LaunchDarkly's integration-framework templates render against.

        Its shape is the framework's (docs/manifests.md describes every field and where it comes
        from). Objects are always present and strings are "" when the entry does not tell, so
        `{{project.key}}` never fails; links are present only when the entry has them (relative
        ones need `link_base_url`). `key` is absent for member events, as in the framework.
        """
        environment = self.environment
        env_key, env_name = (environment.key, environment.name) if environment else ("", "")
        if env_key == "*":
            env_key = ALL_ENVIRONMENTS_KEY
        project = self.project
        moment = _EPOCH + timedelta(milliseconds=self.date_ms)
        member = self.payload.get("member")
        member = member if isinstance(member, Mapping) else {}
        target = self.payload.get("target")
        target = target if isinstance(target, Mapping) else {}
        email = self.member.email if self.member and self.member.email else ""
        context: dict[str, Any] = {
            "_links": self._links(self.payload.get("_links")),
            "baseURL": (self.link_base_url or "").rstrip("/"),
            "_id": self.id,
            "_accountId": _str(self.payload.get("_accountId")) or "",
            "timestamp": {
                "milliseconds": self.date_ms,
                "seconds": self.date_ms // 1000,
                "rfc3339": f"{moment:%Y-%m-%dT%H:%M:%S}Z",
                "simple": f"{moment:%Y-%m-%d %H:%M:%S}",
            },
            "kind": self.kind,
            "name": self.name,
            "key": self.key or "",
            "details": {
                "plainText": self.details.strip(),
                "markdown": self.details_markdown,
                "html": self.details_html,
            },
            "comment": self.comment or "",
            "project": {
                "name": project.name if project else "",
                "key": project.key if project else "",
                "tags": list(project.tags) if project else [],
                "environment": {
                    "name": env_name,
                    "key": env_key,
                    "tags": list(environment.tags) if environment else [],
                },
            },
            "tags": list(self.tags),
            "customProperties": _custom_properties(self.payload.get("customProperties")),
            "member": {
                "_links": self._links(member.get("_links")),
                "_id": _str(member.get("_id")) or "",
                "email": email,
                "emailLocalPart": email.partition("@")[0],
                "firstName": (self.member.first_name if self.member else None) or "",
                "lastName": (self.member.last_name if self.member else None) or "",
                "displayName": self._member_name(),
            },
            "titleVerb": self.title_verb or "",
            "verbKind": self.action or "",
            "title": {
                "plainText": self.title,
                "markdown": self.title_markdown,
                "html": self.title_html,
            },
            "target": {
                "_links": self._links(target.get("_links")),
                "name": _str(target.get("name")) or self.name,
                "_id": _str(target.get("_id")) or "",
            },
        }
        if self.kind == "member":
            del context["key"]
        return context

    def _member_name(self) -> str:
        if self.member is None:
            return ""
        names = " ".join(name for name in (self.member.first_name, self.member.last_name) if name)
        return names or self.member.email or ""

    def _links(self, raw: object) -> dict[str, dict[str, str]]:
        """`{name: {href, type}}` of the links with an http(s) href (relative: made absolute)."""
        links: dict[str, dict[str, str]] = {}
        for name, link in raw.items() if isinstance(raw, Mapping) else ():
            if not isinstance(name, str) or not isinstance(link, Mapping):
                continue
            href = _absolute_url(_str(link.get("href")), self.link_base_url, _PAGE_SCHEMES)
            if href is not None:
                links[name] = {"href": href}
                if isinstance(link.get("type"), str):
                    links[name]["type"] = link["type"]
        return links

    @property
    def date_s(self) -> float:
        """The event time in Unix seconds, with the milliseconds as a fraction."""
        return self.date_ms / 1000

    @property
    def rfc3339(self) -> str:
        """The event time in UTC with millisecond precision: `2023-11-14T22:13:20.000Z`."""
        moment = _EPOCH + timedelta(milliseconds=self.date_ms)
        return f"{moment:%Y-%m-%dT%H:%M:%S}.{self.date_ms % 1000:03d}Z"

    @property
    def is_validation(self) -> bool:
        """Whether this is the synthetic event of "Validate connection" (`validation_entry`)."""
        return self.id.startswith(VALIDATION_EVENT_ID_PREFIX)

    @property
    def environment(self) -> Environment | None:
        """The environment of the changed resource, when it has one."""
        return self.project.environment if self.project else None


def build_context(entry: Mapping[str, Any], *, link_base_url: str | None = None) -> EventContext:
    """The template context of an entry that `parse_entry` accepted; never raises.

    `link_base_url` (e.g. `https://app.launchdarkly.com`) makes relative links absolute; without
    it a relative `_links.site.href` gives no `url`.
    """
    return EventContext(entry, link_base_url=link_base_url)


def validation_entry(now_ms: int) -> dict[str, Any]:
    """The synthetic event that "Validate connection" sends; its `_id` is new on every call."""
    return {
        "_id": VALIDATION_EVENT_ID_PREFIX + secrets.token_hex(_VALIDATION_ID_BYTES),
        "date": now_ms,
        "kind": "flag",
        "name": "pushgate connection test",
        "title": "pushgate connection test",
        "titleVerb": "sent a",
        "member": {"firstName": "pushgate"},
        "comment": "A test event sent by pushgate to validate this connection; it can be ignored.",
        "accesses": [
            {
                "action": "validateConnection",
                "resource": "proj/pushgate:env/test:flag/pushgate-connection-test",
            }
        ],
    }


class _Segment(NamedTuple):
    type: str
    key: str | None
    tags: tuple[str, ...]


def _fail(where: str, problem: str) -> NoReturn:
    raise InvalidRequest(f"{where}: {problem}")


def _parse_id(raw: object, where: str) -> str:
    if raw is None:
        return secrets.token_hex(_ID_BYTES)
    if not isinstance(raw, str) or not raw:
        _fail(where, "must be a non-empty string")
    if not _ID.fullmatch(raw):
        _fail(where, f"must be 1 to {ID_LIMIT} visible ASCII characters (no spaces)")
    return raw


def _parse_date(raw: object, where: str, now_ms: int) -> int:
    if raw is None:
        return now_ms
    if isinstance(raw, bool) or not isinstance(raw, int):
        _fail(where, "must be an integer (Unix milliseconds)")
    if not 0 <= raw <= _MAX_DATE_MS:
        _fail(where, f"must be between 0 and {_MAX_DATE_MS} (Unix milliseconds)")
    return raw


def _parse_accesses(raw: object, where: str) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        _fail(where, "must be a list of {action, resource} objects")
    if len(raw) > MAX_ACCESSES:
        _fail(where, f"must hold at most {MAX_ACCESSES} accesses, not {len(raw)}")
    accesses = []
    for index, access in enumerate(raw):
        if not isinstance(access, dict):
            _fail(f"{where}[{index}]", "must be an object with action and resource")
        for field in ("action", "resource"):
            if not isinstance(access.get(field), str):
                _fail(f"{where}[{index}].{field}", "must be a string")
            check_text(access[field], f"{where}[{index}].{field}", limit=ACCESS_TEXT_LIMIT)
        accesses.append(dict(access))
    return accesses


def _check_optional_str(value: object, where: str) -> None:
    if value is not None and not isinstance(value, str):
        _fail(where, "must be a string")


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _segments(resource: str) -> list[_Segment]:
    """Split `proj/web;mobile:env/production` into typed segments; total on any string."""
    segments = []
    for part in resource.split(":"):
        body, _, tags = part.partition(";")
        type_, _, key = body.partition("/")
        segments.append(_Segment(type_, key or None, tuple(tag for tag in tags.split(",") if tag)))
    return segments


def _without_tags(resource: str) -> str:
    return ":".join(part.partition(";")[0] for part in resource.split(":"))


def _default_kind(resource: str | None) -> str:
    type_ = _segments(resource)[-1].type if resource else ""
    return _KIND_OF_TYPE.get(type_, type_) or "unknown"


def _member(raw: object) -> Member | None:
    if not isinstance(raw, Mapping):
        return None
    email, first, last = (_str(raw.get(field)) for field in _MEMBER_FIELDS)
    return Member(email=email, first_name=first, last_name=last)


def _project(segments: list[_Segment], entry: Mapping[str, Any]) -> Project | None:
    """The resource's project and environment, named by the entry's objects when keys agree."""
    found = {segment.type: segment for segment in segments if segment.key}
    proj, env = found.get("proj"), found.get("env")
    if proj is None or proj.key is None:
        return None
    # The entry's own name is the changed resource's: the project's on a project event, the
    # environment's on an environment event.
    changed = segments[-1].type
    own_name = _str(entry.get("name"))
    environment = None
    if env is not None and env.key is not None:
        fallback = own_name if changed == "env" else None
        if env.key == "*":  # a change to every environment at once
            fallback = fallback or ALL_ENVIRONMENTS_NAME
        name = _name_of(entry.get("environment"), env.key, fallback)
        environment = Environment(env.key, name, env.tags)
    fallback = own_name if changed == "proj" else None
    return Project(
        proj.key, _name_of(entry.get("project"), proj.key, fallback), proj.tags, environment
    )


def _name_of(named: object, key: str, fallback: str | None) -> str:
    if isinstance(named, Mapping) and _str(named.get("key")) in (None, key):
        return _str(named.get("name")) or fallback or key
    return fallback or key


def _site_url(links: object, link_base_url: str | None) -> str | None:
    site = links.get("site") if isinstance(links, Mapping) else None
    href = _str(site.get("href")) if isinstance(site, Mapping) else None
    return _absolute_url(href, link_base_url, _PAGE_SCHEMES)


def _absolute_url(href: str | None, base: str | None, schemes: frozenset[str]) -> str | None:
    """`href` when its scheme is allowed, joined to `base` when relative, else None."""
    if not href:
        return None
    try:
        scheme = urlsplit(href).scheme.lower()
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return None
    if not scheme:
        return f"{base.rstrip('/')}/{href.lstrip('/')}" if base else None
    return href if scheme in schemes else None


def _custom_properties(raw: object) -> dict[str, dict[str, Any]]:
    """`{key: {name, values}}` with string names and string values only."""
    properties: dict[str, dict[str, Any]] = {}
    for key, prop in raw.items() if isinstance(raw, Mapping) else ():
        if isinstance(key, str) and isinstance(prop, Mapping):
            values = [value for value in _list(prop.get("values")) if isinstance(value, str)]
            properties[key] = {"name": _str(prop.get("name")) or key, "values": values}
    return properties


def _escape_markdown(text: str) -> str:
    return _MARKDOWN_SPECIALS.sub(r"\\\1", text)


def _markdown_link(text: str, url: str | None) -> str:
    if url is None:
        return _escape_markdown(text)
    return f"[{_escape_markdown(text)}]({url.replace(' ', '%20').replace(')', '%29')})"


def inline_markdown_html(markdown: str) -> str:
    """Inline markdown (links, `code`, emphasis) as HTML with every piece escaped; links only to
    http(s) and mailto addresses."""
    return _render(markdown, as_html=True, link_base_url=None)


def _render(markdown: str, *, as_html: bool, link_base_url: str | None) -> str:
    """Inline markdown as plain text (markup dropped) or as HTML (every piece escaped)."""
    escape: Callable[[str], str] = html.escape if as_html else str
    pieces = []
    position = 0
    for match in _INLINE.finditer(markdown):
        pieces.append(escape(markdown[position : match.start()]))
        pieces.append(_render_match(match, as_html=as_html, link_base_url=link_base_url))
        position = match.end()
    pieces.append(escape(markdown[position:]))
    return "".join(pieces)


def _render_match(match: re.Match[str], *, as_html: bool, link_base_url: str | None) -> str:
    if (char := match["escaped"]) is not None:
        return html.escape(char) if as_html else char
    if (code := match["code"]) is not None:
        return f"<code>{html.escape(code)}</code>" if as_html else code
    if (label := match["label"]) is not None:
        text = _render(label, as_html=as_html, link_base_url=link_base_url)
        href = _absolute_url(match["href"], link_base_url, _TITLE_LINK_SCHEMES)
        return f'<a href="{html.escape(href)}">{text}</a>' if as_html and href else text
    for group, tag in _WRAPPERS:
        if (inner := match[group]) is not None:
            text = _render(inner, as_html=as_html, link_base_url=link_base_url)
            return f"<{tag}>{text}</{tag}>" if as_html else text
    return match[0]  # unreachable: every alternative of _INLINE is handled above
