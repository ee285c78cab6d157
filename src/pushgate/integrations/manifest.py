"""Manifest integrations: a LaunchDarkly integration-framework manifest run as an adapter.

A manifest (checked by `manifest_schema`, read from disk by `manifest_loader`) becomes an
`Integration` like any other, with the framework's semantics:

- its form variables are the config fields (`string`, `uri`, `enum`, `boolean`; `isSecret`
  fields are `SecretStr`, sealed and masked like every secret); `isOptional` fields take their
  `defaultValue`; a boolean is never required (an unticked box is `false`);
- the endpoint URL and header values render against the form variables at the top level, plus
  `context` (the event's template context); body templates render against the event's
  template context plus `formVariables`;
- the body template is the event kind's (`flag`, `project`, `environment`, `member`), else
  `default`; Validate Connection uses `validation` when there is one;
- a `.json` / `.json.hbs` template renders against a JSON-escaped context and must give valid
  JSON, else the attempt fails permanently; a body that renders empty means "do not send"
  (`DeliverySkipped`), and so does an event kind with no template and no `default`;
- `useStandardWebhookPayload` sends the audit-log entry itself as JSON;
- `hmacSignature` adds the hex HMAC-SHA256 of the body under its header name;
- user:password in the rendered URL becomes a Basic `Authorization` header (unless the
  manifest sets one), so credentials never travel in, or get logged with, a URL;
- `PUSHGATE_ENDPOINT_OVERRIDES[key]` replaces scheme, host and port of the rendered URL.

Outcomes are read as for every integration (`classify_status`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, cast
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import AfterValidator, ConfigDict, Field, SecretStr, create_model

from pushgate.errors import DeliverySkipped, PermanentDeliveryError
from pushgate.events import EventContext
from pushgate.handlebars import Template, TemplateError, basic_auth_header_value, json_escape
from pushgate.integrations.base import (
    USER_AGENT,
    Endpoints,
    Integration,
    IntegrationConfig,
    OutboundRequest,
    check_http_url,
)
from pushgate.integrations.manifest_schema import CheckedManifest, FormVariable
from pushgate.policy import DEFAULT_STATEMENTS

# The event kinds that have a template of their own; every other kind uses `default`.
KIND_TEMPLATES = frozenset({"flag", "project", "environment", "member"})
TEMPLATE_HINT = (
    "The manifest's template could not produce this request: fix the template, or the "
    "configuration's values it uses."
)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_PLAIN_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json"


@dataclass(frozen=True, slots=True)
class BodyTemplate:
    """A body template: the kind it serves, its path in the manifest, and whether it is JSON."""

    kind: str
    path: str
    template: Template
    is_json: bool


@dataclass(frozen=True, slots=True)
class ManifestSpec:
    """Everything a manifest integration serves from: the checked manifest and its templates."""

    key: str
    source: str  # the manifest file, for messages
    checked: CheckedManifest
    url: Template
    headers: tuple[tuple[str, Template], ...]
    bodies: Mapping[str, BodyTemplate]
    icon: str | None = None


class ManifestConfig(IntegrationConfig):
    """Base of the config models made from form variables: keys only by their manifest names."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False, frozen=True)


class ManifestIntegration(Integration[IntegrationConfig]):
    """An integration defined by a manifest; `manifest_integration` makes one.

    The catalog identity (`key`, `name`, ...) is class-level in `Integration`, so every
    manifest gets a class of its own, made by `manifest_integration`.
    """

    def __init__(self, spec: ManifestSpec) -> None:
        self.spec = spec
        self.config_model = config_model(spec.key, spec.checked.manifest.formVariables)

    def build_request(
        self, event: EventContext, config: IntegrationConfig, endpoints: Endpoints
    ) -> OutboundRequest:
        """Render the manifest's request for `event`; `DeliverySkipped` when it sends nothing."""
        variables = self.variables(config)
        context = event.template_context()
        body, is_json = self.render_body(event, context, variables)
        scope = {**variables, "context": context}
        url, basic_auth = _split_credentials(self._render(self.spec.url, scope))
        headers = self._headers(scope, is_json=is_json)
        if basic_auth is not None and not _has(headers, "Authorization"):
            headers["Authorization"] = basic_auth
        signature = self.spec.checked.endpoint.hmacSignature
        secret = variables.get(signature.hmacSecretFormVariableKey) if signature else None
        if signature is not None and isinstance(secret, str) and secret:
            digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            _put(headers, signature.headerName, digest)
        method = self.spec.checked.endpoint.method
        return OutboundRequest(method, endpoints.rebased(self.key, url), headers, body)

    def _headers(self, scope: Mapping[str, Any], *, is_json: bool) -> dict[str, str]:
        """The manifest's headers rendered, after pushgate's User-Agent and a Content-Type."""
        headers = {"User-Agent": USER_AGENT}
        for name, template in self.spec.headers:
            value = self._render(template, scope).strip()
            if _CONTROL.search(value):
                raise PermanentDeliveryError(
                    f"the {name} header rendered a line break or control character",
                    hint=TEMPLATE_HINT,
                )
            _put(headers, name, value)
        if not _has(headers, "Content-Type"):
            headers["Content-Type"] = _JSON if is_json else _PLAIN_TEXT
        return headers

    def variables(self, config: IntegrationConfig) -> dict[str, Any]:
        """The form variables' values by key, secrets revealed ("" / false when unset)."""
        values = self.dump_config(config, mask=False)
        return {
            variable.key: values.get(variable.key, False if variable.type == "boolean" else "")
            for variable in self.spec.checked.manifest.formVariables
        }

    def template_for(self, event: EventContext) -> BodyTemplate | None:
        """The body template for `event`: validation, its kind's, else default (or None)."""
        bodies = self.spec.bodies
        if event.is_validation and "validation" in bodies:
            return bodies["validation"]
        if event.kind in KIND_TEMPLATES and event.kind in bodies:
            return bodies[event.kind]
        return bodies.get("default")

    def render_body(
        self, event: EventContext, context: Mapping[str, Any], variables: Mapping[str, Any]
    ) -> tuple[bytes, bool]:
        """The body and whether it is JSON; `DeliverySkipped` when there is none to send."""
        if self.spec.checked.manifest.hook.useStandardWebhookPayload:
            return json.dumps(dict(event.payload), separators=(",", ":")).encode(), True
        chosen = self.template_for(event)
        if chosen is None:
            raise DeliverySkipped(f"{self.name} has no template for {event.kind} events")
        scope: Any = {**context, "formVariables": dict(variables)}
        text = self._render(chosen.template, json_escape(scope) if chosen.is_json else scope)
        if not text.strip():
            raise DeliverySkipped(f"the {chosen.kind} template rendered nothing for this event")
        if chosen.is_json:
            try:
                json.loads(text)
            except ValueError as error:
                raise PermanentDeliveryError(
                    f"the {chosen.kind} template ({chosen.path}) rendered invalid JSON: {error}",
                    hint=TEMPLATE_HINT,
                ) from None
        return text.encode(errors="replace"), chosen.is_json

    @staticmethod
    def _render(template: Template, scope: Mapping[str, Any]) -> str:
        """Render; a failure (its message names the template) fails the attempt permanently."""
        try:
            return template.render(scope)
        except TemplateError as error:
            raise PermanentDeliveryError(
                f"the manifest's template failed: {error}", hint=TEMPLATE_HINT
            ) from None


def manifest_integration(spec: ManifestSpec) -> ManifestIntegration:
    """The catalog entry for a manifest: a `ManifestIntegration` class of its own, instantiated."""
    manifest = spec.checked.manifest
    identity: dict[str, Any] = {
        "key": spec.key,
        "name": manifest.name,
        "description": manifest.overview or manifest.description or f"Defined by {spec.source}",
        "default_statements": spec.checked.policy
        if spec.checked.policy is not None
        else DEFAULT_STATEMENTS,
        "icon": spec.icon,
    }
    cls = type(f"ManifestIntegration_{_identifier(spec.key)}", (ManifestIntegration,), identity)
    return cast(ManifestIntegration, cls(spec))


def config_model(key: str, variables: list[FormVariable]) -> type[IntegrationConfig]:
    """The config model of a manifest: one field per form variable, aliased by its key."""
    # Attribute names are positional: form-variable keys need not be Python identifiers
    # (`base-url`), and the model is only ever read and written through the aliases.
    fields: dict[str, Any] = {
        f"variable_{index}": _field(variable) for index, variable in enumerate(variables)
    }
    model: type[IntegrationConfig] = create_model(
        f"{_identifier(key)}_config", __base__=ManifestConfig, **fields
    )
    return model


def _field(variable: FormVariable) -> tuple[Any, Any]:
    extra: dict[str, Any] = {}
    if variable.placeholder:
        extra["placeholder"] = variable.placeholder
    if variable.type == "uri":
        extra["format"] = "uri"
    if variable.isHidden:
        extra["hidden"] = True
    labels: dict[str, Any] = {
        "alias": variable.key,
        "title": variable.name,
        "description": variable.description or None,
        "json_schema_extra": extra or None,
    }
    default = variable.defaultValue
    if variable.type == "boolean":
        return bool, Field(default=bool(default), **labels)
    kind: Any
    if variable.type == "enum":
        kind = Literal.__getitem__(tuple(variable.allowedValues or ()))
    elif variable.isSecret:
        kind = SecretStr
    elif variable.type == "uri":
        kind = Annotated[str, AfterValidator(_check_uri)]
    else:
        kind = str
    if not variable.isOptional:
        if variable.type != "enum":
            labels["min_length"] = 1  # a required text is not given by an empty one
        return kind, Field(**labels)
    if variable.isSecret:
        return SecretStr | None, Field(
            default=SecretStr(str(default)) if default else None, **labels
        )
    return kind, Field(default=default, **labels)


def _check_uri(value: str) -> str:
    return check_http_url(value) if value else value


def _split_credentials(rendered: str) -> tuple[str, str | None]:
    """The URL without `user:password@`, and those as a Basic `Authorization` value."""
    text = rendered.strip()
    try:
        parts = urlsplit(text)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        raise PermanentDeliveryError(
            f"the endpoint URL rendered {text!r}, which is not an absolute http(s) URL",
            hint="Check the configuration's values that the manifest's URL is made of.",
        )
    if "@" not in parts.netloc:
        return text, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    auth = basic_auth_header_value(unquote(user), unquote(password))
    return urlunsplit(parts._replace(netloc=host)), auth


def _has(headers: Mapping[str, str], name: str) -> bool:
    return any(existing.lower() == name.lower() for existing in headers)


def _put(headers: dict[str, str], name: str, value: str) -> None:
    """Set a header, replacing one of the same name in any case (a manifest's User-Agent)."""
    for existing in [n for n in headers if n.lower() == name.lower()]:
        del headers[existing]
    headers[name] = value


def _identifier(key: str) -> str:
    return re.sub(r"\W", "_", key)
