"""The shape every integration has: a typed config model and a sans-I/O adapter.

An adapter turns (event context, config) into an `OutboundRequest` and judges an
`InboundResponse`; it never does I/O itself. The delivery engine and validation own sending,
through the one transport. Adding an integration is one module in this package plus tests.

One exception: a vendor whose API wants a short-lived token obtained first (OAuth client
credentials) overrides `Integration.credentials`. The engine calls it before each send with the
transport's own `send`, so the token request travels the same guarded road; the headers it
returns are added to the request, and a 401 answer makes the engine ask once more with
`refresh=True` and resend once.

Config models declare the form: field aliases are LaunchDarkly's config keys, `title` is the
label, `description` the help text, `json_schema_extra` may carry `placeholder`, and fields typed
`SecretStr` are secrets (encrypted at rest, masked in every answer, at least `SECRET_MIN_LENGTH`
characters). A secret with `"format": "uri"` is a URL that carries its credential (a Teams or
webhook URL): answers show its scheme and host and mask the rest, `https://host/********`.
Every string of a config is at most `CONFIG_TEXT_LIMIT` characters, with no control characters.
"""

from __future__ import annotations

import abc
import enum
import functools
import json
import re
import types
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Generic, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from pushgate.errors import InvalidRequest, PermanentDeliveryError, RetryableDeliveryError
from pushgate.events import EventContext
from pushgate.limits import CONFIG_TEXT_LIMIT, check_text, key_path
from pushgate.masking import SECRET_MASK as SECRET_MASK
from pushgate.masking import SECRET_MIN_LENGTH as SECRET_MIN_LENGTH
from pushgate.policy import DEFAULT_STATEMENTS, Statement
from pushgate.values import value_class

USER_AGENT = "pushgate/0.1 (+https://github.com/pushgate/pushgate)"
JSON_HEADERS = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
# RFC 9110 field names are tokens.
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Statuses worth another attempt: timeout, too many requests, and every server error.
RETRYABLE_STATUSES = frozenset({408, 425, 429})


@value_class
class OutboundRequest:
    """One HTTP request an adapter wants sent."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes = b""
    params: Sequence[tuple[str, str]] = ()
    verify_tls: bool = True


@value_class
class InboundResponse:
    """What came back: status, headers and a body capped at the configured size."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    truncated: bool = False

    def text(self) -> str:
        """The body as text (undecodable bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def retry_after(self) -> float | None:
        """Seconds asked by a `Retry-After` header in delta-seconds form, if any."""
        value = self.headers.get("Retry-After")
        if value is None:
            return None
        try:
            return max(float(value), 0.0)
        except ValueError:
            return _retry_after_date(value)


def _retry_after_date(value: str) -> float | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Vendor base URLs, with the operator's `PUSHGATE_ENDPOINT_OVERRIDES` applied."""

    overrides: Mapping[str, str] = field(default_factory=dict)

    def base_url(self, key: str, default: str) -> str:
        """The base URL for integration `key`: the override when one is set, else `default`."""
        return self.overrides.get(key, default).rstrip("/")

    def rebased(self, key: str, url: str) -> str:
        """`url` with scheme, host and port (and a path prefix) of the override for `key`.

        For integrations whose whole URL comes from a template (manifest integrations): the
        override replaces where the request goes, the rendered path and query are kept.
        """
        override = self.overrides.get(key)
        if override is None:
            return url
        base, parts = urlsplit(override), urlsplit(url)
        path = base.path.rstrip("/") + parts.path
        return urlunsplit((base.scheme, base.netloc, path, parts.query, parts.fragment))


class IntegrationConfig(BaseModel):
    """Base of every config model: unknown fields are refused, LaunchDarkly keys are aliases."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


C = TypeVar("C", bound=IntegrationConfig)

# The transport's `send`, handed to `Integration.credentials` for its own requests.
Send = Callable[[OutboundRequest], Awaitable[InboundResponse]]


class Integration(abc.ABC, Generic[C]):
    """A catalog entry: its identity, its config model and its sans-I/O adapter."""

    key: ClassVar[str]
    name: ClassVar[str]
    description: ClassVar[str]
    config_model: type[C]
    # Shown with 401/403 answers: which field of the form to check.
    auth_hint: ClassVar[str] = "The receiver rejected the credentials: check them."
    # The policy a new configuration gets when its creator gives none.
    default_statements: ClassVar[tuple[Statement, ...]] = DEFAULT_STATEMENTS
    # The logo as a `data:` URI, when the integration has one (else the UI shows an initial).
    icon: ClassVar[str | None] = None

    @abc.abstractmethod
    def build_request(
        self, event: EventContext, config: C, endpoints: Endpoints
    ) -> OutboundRequest:
        """Render `event` into this tool's API request."""

    def classify(self, response: InboundResponse) -> None:
        """Return when the response means success; raise a `DeliveryError` subclass otherwise."""
        classify_status(response, auth_hint=self.auth_hint)

    async def credentials(
        self, config: C, endpoints: Endpoints, send: Send, *, refresh: bool
    ) -> Mapping[str, str]:
        """Extra headers (e.g. `Authorization`) that need I/O first; none by default.

        Called before every send. An implementation may cache what it fetched, keyed so that
        different configurations never share it; `refresh=True` (after a 401) means the cached
        value was refused and must be fetched anew. Raise a `DeliveryError` when the
        credentials cannot be had; `send` raises `TransportError` and `BlockedTarget` as usual.
        """
        return {}

    # --- the config form -----------------------------------------------------------------

    def parse_config(self, raw: object, *, stored: C | None = None) -> C:
        """Validate a config body; masked secrets keep the `stored` value. 400 names the field."""
        if not isinstance(raw, Mapping):
            raise InvalidRequest("config: must be an object")
        values = dict(raw)
        for key, value in values.items():
            _check_config_text(value, key_path("config", str(key)))
        urls = secret_url_fields(self.config_model)
        for name in secret_fields(self.config_model):
            value = values.get(name)
            if not is_masked(value):
                continue
            if stored is None:
                raise InvalidRequest(f"config.{name}: enter the secret value")
            kept = getattr(stored, _attribute(self.config_model, name))
            if name in urls and value != masked_url(kept):
                raise InvalidRequest(
                    f"config.{name}: the saved URL is masked; to change it, enter the whole new URL"
                )
            values[name] = kept
        try:
            config = self.config_model.model_validate(values)
        except ValidationError as error:
            raise InvalidRequest(_describe(error, prefix="config")) from None
        for name in secret_fields(self.config_model):
            secret = getattr(config, _attribute(self.config_model, name))
            if isinstance(secret, SecretStr) and len(secret.get_secret_value()) < SECRET_MIN_LENGTH:
                raise InvalidRequest(
                    f"config.{name}: a secret must be at least {SECRET_MIN_LENGTH} characters "
                    "(a shorter one cannot be told apart from other text, so it cannot be masked)"
                )
        return config

    def dump_config(self, config: C, *, mask: bool) -> dict[str, Any]:
        """The config as LaunchDarkly JSON, defaults filled in; secrets masked or revealed
        (a secret URL masked but for its scheme and host)."""
        out: dict[str, Any] = {}
        urls = secret_url_fields(self.config_model)
        for name, value in config.model_dump(by_alias=True, mode="python").items():
            if isinstance(value, SecretStr):
                if not mask:
                    out[name] = value.get_secret_value()
                else:
                    out[name] = masked_url(value) if name in urls else SECRET_MASK
            elif isinstance(value, enum.Enum):
                out[name] = value.value
            elif value is not None:
                out[name] = value
        return out

    def secret_values(self, config: C) -> list[str]:
        """The secret values in `config` (non-empty), to keep them out of logs and answers."""
        values = [getattr(config, name) for name in _secret_attributes(self.config_model)]
        return [
            v.get_secret_value()
            for v in values
            if isinstance(v, SecretStr) and v.get_secret_value()
        ]

    def form(self) -> list[dict[str, Any]]:
        """The form fields of this integration, for the manifest endpoint and the web form."""
        return form_fields(self.config_model)


def check_http_url(value: str) -> str:
    """Field validator: an absolute http(s) URL with a host and no user name or password."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL")
    _ = parts.port  # raises ValueError for a port that is not a number from 0 to 65535
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry a user name or password: use the secret fields")
    return value


def check_secret_url(value: SecretStr) -> SecretStr:
    """Field validator of a secret URL: what `check_http_url` checks."""
    check_http_url(value.get_secret_value())
    return value


def masked_url(value: SecretStr) -> str:
    """A secret URL as answers show it: `https://host[:port]/********`."""
    parts = urlsplit(value.get_secret_value())
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}/{SECRET_MASK}"


def is_masked(value: object) -> bool:
    """Whether a submitted value is a masked secret (`********` or a masked URL)."""
    return isinstance(value, str) and (value == SECRET_MASK or value.endswith("/" + SECRET_MASK))


def _check_config_text(value: object, where: str) -> None:
    """Every string in a config value (map keys and values too) within `CONFIG_TEXT_LIMIT`."""
    if isinstance(value, str):
        check_text(value, where, limit=CONFIG_TEXT_LIMIT, empty=True)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_text(key, f"{where} (a key)", limit=CONFIG_TEXT_LIMIT, empty=True)
            _check_config_text(item, key_path(where, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_config_text(item, f"{where}[{index}]")


def classify_status(response: InboundResponse, *, auth_hint: str) -> None:
    """The common reading of an HTTP status: 2xx succeeds; 408/429/5xx retry; the rest is final."""
    status = response.status
    if 200 <= status < 300:
        return
    body = response.text()
    description = f"HTTP {status}"
    if status in RETRYABLE_STATUSES or status >= 500:
        raise RetryableDeliveryError(
            description,
            status_code=status,
            response_body=body,
            retry_after=response.retry_after,
            hint="The receiver is busy or failing; deliveries are retried on their schedule.",
        )
    hint = {
        401: auth_hint,
        403: auth_hint,
        404: "The receiver does not know this address: check the URL.",
        413: "The receiver refused the payload as too large.",
    }.get(status)
    if 300 <= status < 400:
        hint = "Redirects are not followed: configure the final URL."
    raise PermanentDeliveryError(description, status_code=status, response_body=body, hint=hint)


def secret_fields(model: type[BaseModel]) -> list[str]:
    """Config keys (aliases) whose values are secrets."""
    return [
        info.alias or name
        for name, info in model.model_fields.items()
        if _unwrap(info.annotation)[0] is SecretStr
    ]


@functools.cache  # a model's fields do not change; every attempt asks
def _secret_attributes(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(_attribute(model, key) for key in secret_fields(model))


def secret_url_fields(model: type[BaseModel]) -> frozenset[str]:
    """Config keys of secrets that are URLs (`"format": "uri"`): masked all but the host."""
    return frozenset(
        info.alias or name
        for name, info in model.model_fields.items()
        if _unwrap(info.annotation)[0] is SecretStr
        and isinstance(info.json_schema_extra, dict)
        and info.json_schema_extra.get("format") == "uri"
    )


def _attribute(model: type[BaseModel], key: str) -> str:
    for name, info in model.model_fields.items():
        if (info.alias or name) == key:
            return name
    return key


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """The type inside `X | None`, and whether None was allowed."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def form_fields(model: type[BaseModel]) -> list[dict[str, Any]]:
    """Describe each field: key, label, type, required, secret, default, choices, help text."""
    fields = []
    for name, info in model.model_fields.items():
        kind, _ = _unwrap(info.annotation)
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        entry: dict[str, Any] = {
            "key": info.alias or name,
            "label": info.title or name,
            "type": "string",
            "required": info.is_required(),
            "secret": kind is SecretStr,
        }
        if info.description:
            entry["description"] = info.description
        if "placeholder" in extra:
            entry["placeholder"] = extra["placeholder"]
        if extra.get("hidden"):
            entry["hidden"] = True
        if kind is bool:
            entry["type"] = "boolean"
        elif kind in (int, float):
            entry["type"] = "number"
        elif typing.get_origin(kind) is Literal:
            entry["type"] = "enum"
            entry["choices"] = list(typing.get_args(kind))
        elif isinstance(kind, type) and issubclass(kind, enum.Enum):
            entry["type"] = "enum"
            entry["choices"] = [member.value for member in kind]
        elif typing.get_origin(kind) is dict:
            entry["type"] = "map"
        elif "format" in extra:
            entry["type"] = extra["format"]
        if not info.is_required() and kind is not SecretStr:
            default = info.get_default(call_default_factory=True)
            if default is not None:
                entry["default"] = default.value if isinstance(default, enum.Enum) else default
        fields.append(entry)
    return fields


def _describe(error: ValidationError, *, prefix: str) -> str:
    """One line per problem, each naming the field: `config.apiKey: Field required`."""
    parts = []
    for problem in error.errors():
        place = ".".join(str(piece) for piece in (prefix, *problem["loc"]))
        message = "unknown field" if problem["type"] == "extra_forbidden" else problem["msg"]
        parts.append(f"{place}: {message}")
    return "; ".join(parts)
