"""The Edit configuration form: from HTML form fields to domain bodies, and errors back to fields.

Field names: `name`, `on`, `tags`, `config.<key>` for each field of the integration's form
(`Integration.form()`), and per policy statement `statements[i].effect`, `.resourcesKind`,
`.resources`, `.actionsKind`, `.actions`. The form keeps what the person typed, as typed, so a
failed save can show it again. Everything here is pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Fields = Sequence[Mapping[str, Any]]
_STATEMENT_FIELD = re.compile(r"statements\[(\d+)\]\.(\w+)")
# Where one problem of an `InvalidRequest` message starts: `; config.url: ...`.
_PROBLEM = re.compile(
    r"(?:^|; )(?P<path>config(?:\.[^\s:;]+)?|name|on|tags|body"
    r"|statements(?:\[\d+\](?:\.\w+(?:\[\d+\])?)?)?): "
)
_STATEMENT_PATH = re.compile(r"statements\[(\d+)\](?:\.(\w+))?")
_MEMBER = {
    "resources": "resources",
    "notResources": "resources",
    "actions": "actions",
    "notActions": "actions",
    "effect": "effect",
}


@dataclass
class StatementForm:
    """One policy statement as the form shows it: one specifier or action per line."""

    effect: str = "allow"
    resources_kind: str = "resources"
    resources: str = ""
    actions_kind: str = "actions"
    actions: str = ""

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> StatementForm:
        """A stored statement (LaunchDarkly JSON) as form values."""
        resources_kind = "notResources" if "notResources" in raw else "resources"
        actions_kind = "notActions" if "notActions" in raw else "actions"
        return cls(
            effect=str(raw.get("effect", "allow")),
            resources_kind=resources_kind,
            resources="\n".join(raw.get(resources_kind) or ()),
            actions_kind=actions_kind,
            actions="\n".join(raw.get(actions_kind) or ()),
        )

    def to_json(self) -> dict[str, Any]:
        """The statement body the domain validates (`parse_statements`)."""
        return {
            "effect": self.effect,
            self.resources_kind: _lines(self.resources),
            self.actions_kind: _lines(self.actions),
        }


@dataclass
class ConfigurationForm:
    """Everything the Edit configuration panel holds, as typed."""

    name: str = ""
    on: bool = True
    tags: str = ""
    config: dict[str, str | bool] = field(default_factory=dict)
    statements: list[StatementForm] = field(default_factory=list)
    version: int | None = None

    @classmethod
    def new(cls, fields: Fields, statements: Sequence[Mapping[str, Any]]) -> ConfigurationForm:
        """A blank form: field defaults, on, and the default policy."""
        config = {f["key"]: _shown(f, f["default"]) for f in fields if "default" in f}
        return cls(config=config, statements=[StatementForm.from_json(s) for s in statements])

    @classmethod
    def saved(
        cls, fields: Fields, representation: Mapping[str, Any], version: int
    ) -> ConfigurationForm:
        """A stored configuration (its API representation, secrets masked) as form values."""
        values = representation["config"]
        return cls(
            name=representation["name"],
            on=representation["on"],
            tags=", ".join(representation["tags"]),
            config={f["key"]: _shown(f, values[f["key"]]) for f in fields if f["key"] in values},
            statements=[StatementForm.from_json(s) for s in representation["statements"]],
            version=version,
        )

    @classmethod
    def submitted(cls, fields: Fields, data: Mapping[str, Any]) -> ConfigurationForm:
        """The form as posted (missing checkboxes mean off)."""

        def text(name: str) -> str:
            value = data.get(name)
            return value if isinstance(value, str) else ""

        config: dict[str, str | bool] = {}
        for f in fields:
            name = "config." + f["key"]
            config[f["key"]] = name in data if f["type"] == "boolean" else text(name)
        indexes = sorted({int(m[1]) for key in data if (m := _STATEMENT_FIELD.fullmatch(key))})
        statements = [
            StatementForm(
                effect=text(f"statements[{i}].effect") or "allow",
                resources_kind=_kind(text(f"statements[{i}].resourcesKind"), "resources"),
                resources=text(f"statements[{i}].resources"),
                actions_kind=_kind(text(f"statements[{i}].actionsKind"), "actions"),
                actions=text(f"statements[{i}].actions"),
            )
            for i in indexes
        ]
        version = text("version")
        return cls(
            name=text("name"),
            on="on" in data,
            tags=text("tags"),
            config=config,
            statements=statements,
            version=int(version) if version.isdigit() else None,
        )

    def config_body(self, fields: Fields) -> tuple[dict[str, Any], dict[str, str]]:
        """The `config` object for the domain, and problems found reading the form itself.

        Empty text means "not set" (the field's default, or no secret); a masked secret is
        passed on as the mask, which the domain reads as "keep the stored value".
        """
        body: dict[str, Any] = {}
        problems: dict[str, str] = {}
        for f in fields:
            key, kind = f["key"], f["type"]
            value = self.config.get(key, False if kind == "boolean" else "")
            if isinstance(value, bool):
                body[key] = value
                continue
            text = value.strip()
            if not text:
                continue
            if kind == "map":
                body[key], problem = _parse_map(text)
                if problem:
                    problems["config." + key] = problem
            elif kind == "enum":
                body[key] = next((c for c in f.get("choices", ()) if str(c) == text), text)
            elif kind == "number":
                body[key] = _number(text)
            else:
                body[key] = text
        return body, problems

    def statements_body(self) -> list[dict[str, Any]]:
        """The policy for the domain."""
        return [statement.to_json() for statement in self.statements]

    def tag_list(self) -> list[str]:
        """Tags typed as a comma-separated list."""
        return [tag.strip() for tag in self.tags.split(",") if tag.strip()]

    def create_body(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """LaunchDarkly's `SubscriptionPost` body."""
        return {
            "name": self.name,
            "on": self.on,
            "tags": self.tag_list(),
            "config": dict(config),
            "statements": self.statements_body(),
        }

    def patch_operations(self, config: Mapping[str, Any]) -> list[dict[str, Any]]:
        """A JSON Patch that replaces every member the form edits."""
        body = self.create_body(config)
        return [{"op": "replace", "path": "/" + key, "value": value} for key, value in body.items()]


def field_errors(message: str, config_keys: Sequence[str] = ()) -> tuple[dict[str, str], list[str]]:
    """Split an `InvalidRequest` message into errors by form field and errors for the form.

    `config.url: must be …; name: required` gives `{"config.url": "Must be ….", "name": …}`;
    `statements[1].notResources[0]: …` lands on `statements[1].resources`.
    """
    starts = list(_PROBLEM.finditer(message))
    if not starts or starts[0].start() != 0:
        return {}, [_sentence(message)]
    by_field: dict[str, str] = {}
    general: list[str] = []
    for match, following in zip(starts, [*starts[1:], None], strict=True):
        text = _sentence(message[match.end() : following.start() if following else None])
        name = _field_of(match["path"], config_keys)
        if name is None:
            general.append(f"{match['path']}: {text}")
        else:
            by_field[name] = f"{by_field[name]} {text}" if name in by_field else text
    return by_field, general


def _field_of(path: str, config_keys: Sequence[str]) -> str | None:
    if path.startswith("config."):
        key = path.removeprefix("config.").split(".")[0].split("[")[0]
        return "config." + key if key in config_keys else None
    if path in ("name", "on", "tags", "statements"):
        return path
    match = _STATEMENT_PATH.match(path)
    if match is None:
        return None
    member = _MEMBER.get(match[2] or "")
    return f"statements[{match[1]}]" + (f".{member}" if member else "")


def _sentence(text: str) -> str:
    text = text.strip().removeprefix("Value error, ")
    if text == "Field required":
        text = "required"
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "?", "!", ")")) else text + "."


def _shown(form_field: Mapping[str, Any], value: Any) -> str | bool:
    if form_field["type"] == "boolean":
        return bool(value)
    if form_field["type"] == "map" and isinstance(value, Mapping):
        return "\n".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def _kind(value: str, positive: str) -> str:
    negative = "not" + positive[0].upper() + positive[1:]
    return negative if value == negative else positive


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text  # the config model reports it, naming the field


def _parse_map(text: str) -> tuple[dict[str, str], str | None]:
    pairs: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            return pairs, f"Line {number}: write one key=value pair per line."
        pairs[key.strip()] = value.strip()
    return pairs, None
