"""Policy statements with LaunchDarkly semantics: which events a configuration receives.

A statement allows or denies `(action, resource)` pairs. Resources are named by specifiers such
as `proj/*:env/production;critical:flag/new-*`: segments joined by `:`, each `type/key` with an
optional `;tag1,tag2`. A specifier matches a resource of the same shape when every segment has
the same type, its key glob matches the resource's key (case-sensitive) and all of its tags are
on the resource's segment (case-insensitive). Actions are globs too (`update*`, `*`).

An event is delivered when some access is allowed by some statement and denied by none: deny
wins, order does not matter, and nothing is allowed by default. Everything here is pure;
specifiers and globs are compiled once, when a statement is built.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pushgate.errors import InvalidRequest
from pushgate.limits import check_text

# One segment of a specifier or of an event's resource: `type/key` then optional `;tag,tag`.
_NAME = r"[^/;:,\s]+"
_SEGMENT = re.compile(
    rf"(?P<type>[A-Za-z0-9_-]+)/(?P<key>{_NAME})(?:;(?P<tags>{_NAME}(?:,{_NAME})*))?"
)
_EXAMPLE = "proj/*:env/production:flag/*"
_FIELDS = ("effect", "resources", "notResources", "actions", "notActions")
# Events repeat the same few resources; a bounded cache keeps hostile input from growing memory.
_RESOURCE_CACHE_SIZE = 4096
# A policy is matched against every event: bounded, its cost is too. LaunchDarkly policies have
# a few statements of a few specifiers each.
MAX_STATEMENTS = 100
MAX_STATEMENT_ENTRIES = 100
STATEMENT_TEXT_LIMIT = 512


class Effect(enum.StrEnum):
    """What a statement does to the accesses it matches."""

    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class Access:
    """One `(action, resource)` pair of an event's `accesses`."""

    action: str
    resource: str


@dataclass(frozen=True, slots=True)
class _SpecifierSegment:
    type: str
    key: re.Pattern[str]
    tags: frozenset[str]  # casefolded


_Specifier = tuple[_SpecifierSegment, ...]
_Resource = tuple[tuple[str, str, frozenset[str]], ...]  # (type, key, casefolded tags)


def _glob(pattern: str) -> str:
    """A regex for the `*` glob `pattern`, to be used with `fullmatch`.

    The naive `.*a.*a.*b` backtracks catastrophically on a long key of `a`s, and policies are
    user input. Taking each inner literal at its leftmost occurrence is always a best choice
    for `*` globs, so atomic groups may forbid revisiting it: matching stays linear.
    """
    first, *inner = (re.escape(literal) for literal in pattern.split("*"))
    if not inner:
        return first
    *middle, last = inner
    return first + "".join(f"(?>.*?{literal})" for literal in middle) + ".*" + last


def _split_segments(text: str) -> list[re.Match[str]] | None:
    segments = []
    for segment in text.split(":"):
        match = _SEGMENT.fullmatch(segment)
        if match is None:
            return None
        segments.append(match)
    return segments


def _tags(match: re.Match[str]) -> frozenset[str]:
    tags = match["tags"]
    return frozenset(tag.casefold() for tag in tags.split(",")) if tags else frozenset()


def _compile_specifier(text: str) -> _Specifier | None:
    segments = _split_segments(text)
    if segments is None:
        return None
    return tuple(
        _SpecifierSegment(m["type"], re.compile(_glob(m["key"]), re.DOTALL), _tags(m))
        for m in segments
    )


@functools.lru_cache(maxsize=_RESOURCE_CACHE_SIZE)
def _parse_resource(text: str) -> _Resource | None:
    segments = _split_segments(text)
    if segments is None:
        return None
    return tuple((m["type"], m["key"], _tags(m)) for m in segments)


def _specifier_matches(specifier: _Specifier, resource: _Resource) -> bool:
    return len(specifier) == len(resource) and all(
        wanted.type == type_ and wanted.key.fullmatch(key) is not None and wanted.tags <= tags
        for wanted, (type_, key, tags) in zip(specifier, resource, strict=True)
    )


def _exactly_one(
    given: tuple[str, ...] | None, negated: tuple[str, ...] | None, name: str
) -> tuple[str, ...]:
    if given and negated is None:
        return given
    if negated and given is None:
        return negated
    raise ValueError(f"a Statement needs exactly one non-empty {name} or not_{name}")


@dataclass(frozen=True)
class Statement:
    """One policy statement: an effect on the accesses its resources and actions match.

    Exactly one of `resources`/`not_resources` and one of `actions`/`not_actions` is given;
    building a statement in code that breaks this, or that holds a malformed specifier, is a
    programming error (`ValueError`). Input from the API goes through `from_json`, which
    reports the same problems as `InvalidRequest` naming the field.
    """

    effect: Effect
    resources: tuple[str, ...] | None = None
    not_resources: tuple[str, ...] | None = None
    actions: tuple[str, ...] | None = None
    not_actions: tuple[str, ...] | None = None
    _specifiers: tuple[_Specifier, ...] = field(init=False, repr=False, compare=False)
    _actions: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        specifiers = []
        for text in _exactly_one(self.resources, self.not_resources, "resources"):
            specifier = _compile_specifier(text)
            if specifier is None:
                raise ValueError(f"{text!r} is not a valid resource specifier")
            specifiers.append(specifier)
        actions = "|".join(
            _glob(p) for p in _exactly_one(self.actions, self.not_actions, "actions")
        )
        object.__setattr__(self, "_specifiers", tuple(specifiers))
        object.__setattr__(self, "_actions", re.compile(actions, re.DOTALL))

    @classmethod
    def from_json(cls, raw: object, *, where: str = "statements[0]") -> Statement:
        """Validate one statement in LaunchDarkly's JSON shape; `where` prefixes error messages."""
        if not isinstance(raw, dict):
            raise InvalidRequest(f"{where}: must be an object")
        for key in raw:
            if key not in _FIELDS:
                raise InvalidRequest(f"{where}.{key}: unknown field")
        effect = raw.get("effect")
        if effect not in tuple(Effect):
            raise InvalidRequest(f'{where}.effect: must be "allow" or "deny"')
        lists = {name: _strings(raw, name, where) for name in _FIELDS[1:]}
        for name, negated in (("resources", "notResources"), ("actions", "notActions")):
            if (lists[name] is None) == (lists[negated] is None):
                raise InvalidRequest(f'{where}: give exactly one of "{name}" and "{negated}"')
        for name in ("resources", "notResources"):
            for index, text in enumerate(lists[name] or ()):
                if _compile_specifier(text) is None:
                    raise InvalidRequest(
                        f'{where}.{name}[{index}]: "{text}" is not a valid resource specifier'
                        f' (expected e.g. "{_EXAMPLE}")'
                    )
        return cls(
            Effect(effect),
            resources=lists["resources"],
            not_resources=lists["notResources"],
            actions=lists["actions"],
            not_actions=lists["notActions"],
        )

    def to_json(self) -> dict[str, object]:
        """The statement in LaunchDarkly's JSON shape; absent keys are omitted, never null."""
        lists = (self.resources, self.not_resources, self.actions, self.not_actions)
        json: dict[str, object] = {"effect": self.effect.value}
        for name, values in zip(_FIELDS[1:], lists, strict=True):
            if values is not None:
                json[name] = list(values)
        return json

    def matches(self, access: Access) -> bool:
        """Whether this statement applies to `access`; a malformed resource matches nothing."""
        # Each check is "listed" xor "the list is a not-list"; the cheap action check goes first.
        action_listed = self._actions.fullmatch(access.action) is not None
        if action_listed == (self.not_actions is not None):
            return False
        resource = _parse_resource(access.resource)
        if resource is None:
            return False
        resource_listed = any(_specifier_matches(s, resource) for s in self._specifiers)
        return resource_listed != (self.not_resources is not None)


def _strings(raw: dict[object, object], name: str, where: str) -> tuple[str, ...] | None:
    """The non-empty list of non-empty strings under `name`; None when absent or null."""
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise InvalidRequest(f"{where}.{name}: must be a non-empty list of strings")
    if len(value) > MAX_STATEMENT_ENTRIES:
        raise InvalidRequest(f"{where}.{name}: at most {MAX_STATEMENT_ENTRIES} entries")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise InvalidRequest(f"{where}.{name}[{index}]: must be a non-empty string")
        check_text(item, f"{where}.{name}[{index}]", limit=STATEMENT_TEXT_LIMIT)
    return tuple(value)


def parse_statements(raw: object, *, field: str = "statements") -> list[Statement]:
    """Validate a JSON list of statements; errors name `field` and the index, e.g. `statements[2]`.

    An empty list is valid and, like any policy without a matching allow, delivers nothing.
    """
    if not isinstance(raw, list):
        raise InvalidRequest(f"{field}: must be a list of statements")
    if len(raw) > MAX_STATEMENTS:
        raise InvalidRequest(f"{field}: at most {MAX_STATEMENTS} statements, not {len(raw)}")
    return [Statement.from_json(item, where=f"{field}[{i}]") for i, item in enumerate(raw)]


def is_allowed(statements: Sequence[Statement], accesses: Iterable[Access]) -> bool:
    """Whether some access is matched by an allow statement and by no deny statement."""
    allows = [s for s in statements if s.effect is Effect.ALLOW]
    denies = [s for s in statements if s.effect is Effect.DENY]
    return any(
        any(s.matches(access) for s in allows) and not any(s.matches(access) for s in denies)
        for access in accesses
    )


DEFAULT_STATEMENTS: tuple[Statement, ...] = (
    Statement(Effect.ALLOW, resources=(_EXAMPLE,), actions=("*",)),
)
"""The policy of a configuration that gives none: every action on production flags."""
