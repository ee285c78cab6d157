"""Settings: one class, read from `PUSHGATE_*` environment variables, validated at start-up.

Built once by the entry point (`Settings()`) and passed down; nothing reads the environment
after that. docs/settings.md lists every setting with its default.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pushgate.breaker import BreakerPolicy
from pushgate.limits import DEFAULT_EVENT_SIZE_LIMIT, DEFAULT_REQUEST_SIZE_LIMIT
from pushgate.outbound import IPNetwork

DEFAULT_RETRY_SCHEDULE = (5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0)
# An admin token is guessed online only if it is short: 32 characters of a random string (the
# shortest `PUSHGATE_SECRET_KEY`, too) are far beyond any guessing rate.
ADMIN_TOKEN_MIN_LENGTH = 32

# The SQLite database's file in the data directory.
DATABASE_FILE = "pushgate.db"
# The shortest PUSHGATE_SECRET_KEY (and PUSHGATE_PREVIOUS_SECRET_KEY): 32 random characters.
SECRET_KEY_MIN_LENGTH = 32
# A plain PostgreSQL identifier: it needs no quoting in search_path or in a NOTIFY channel name.
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,47}")
# The database URL schemes pushgate speaks, and the async driver each one maps to.
DATABASE_SCHEMES = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}
DATABASE_URL_FORMS = "postgresql://user:password@host:5432/database or sqlite:////absolute/path.db"
LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["auto", "json", "console"]


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every knob of a pushgate process. Environment variable = `PUSHGATE_` + field name."""

    # Inputs stay out of error messages: they may be secrets (PUSHGATE_ADMIN_TOKEN, _SECRET_KEY).
    model_config = SettingsConfigDict(
        env_prefix="PUSHGATE_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    data_dir: Path = Field(
        default=Path("data"),
        description="Directory for the SQLite database and the generated secret key file.",
    )
    database_url: str = Field(
        default="",
        description=(
            "SQLAlchemy URL. Empty: SQLite at <data_dir>/pushgate.db. `sqlite:///…` and "
            "`postgresql://…` are mapped to their async drivers (aiosqlite, asyncpg)."
        ),
    )
    database_schema: str | None = Field(
        default=None,
        description=(
            "PostgreSQL only: the schema pushgate's tables live in (it must exist). Unset: the "
            "server's search_path. Lets several installs share one database."
        ),
    )
    database_pool_size: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="PostgreSQL only: connections each process keeps open in its pool.",
    )
    database_max_overflow: int = Field(
        default=10,
        ge=0,
        le=1000,
        description="PostgreSQL only: connections a process may open beyond the pool under load.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description=(
            "Key that encrypts configuration secrets at rest (any string of 32+ characters). "
            "Empty: a key file <data_dir>/secret.key is created with mode 0600. Every process "
            "that shares a database must share this key."
        ),
    )
    previous_secret_key: SecretStr | None = Field(
        default=None,
        description=(
            "While a key rotation runs (`pushgate rotate-key`): the key being replaced. Secrets "
            "sealed under it still open; nothing new is sealed with it. Remove it once the "
            "rotation has ended."
        ),
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description=(
            f"A token value accepted as an admin token (bootstrap, automation); at least "
            f"{ADMIN_TOKEN_MIN_LENGTH} characters."
        ),
    )
    request_size_limit: int = Field(
        default=DEFAULT_REQUEST_SIZE_LIMIT,
        ge=1024,
        le=1024**3,
        description=(
            "Bytes a request body may have; a longer one is refused with 413 as soon as it "
            "passes the limit, before the rest is read."
        ),
    )
    event_size_limit: int = Field(
        default=DEFAULT_EVENT_SIZE_LIMIT,
        ge=1024,
        le=1024**3,
        description=(
            "Bytes one event may have, as compact JSON; a batch holding a larger one is refused "
            "whole with 400. At most PUSHGATE_REQUEST_SIZE_LIMIT."
        ),
    )
    trusted_proxies: Annotated[tuple[IPNetwork, ...], NoDecode] = Field(
        default=(ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128")),
        description=(
            "Comma-separated CIDRs of reverse proxies whose X-Forwarded-For and "
            "X-Forwarded-Proto `pushgate serve` believes; the client address they name is the "
            "one failed sign-ins are counted for."
        ),
        examples=["127.0.0.1/32,10.0.0.5/32"],
    )
    retry_schedule: Annotated[tuple[float, ...], NoDecode] = Field(
        default=DEFAULT_RETRY_SCHEDULE,
        description=(
            "Delays in seconds before each retry of a failed delivery, comma-separated. A delivery "
            "gets 1 + len(schedule) attempts, then it is given up."
        ),
        examples=["5,30,120,600"],
    )
    retry_jitter: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="Each retry delay is scaled by a random factor 1±jitter.",
    )
    request_timeout: float = Field(
        default=10.0, gt=0, description="Seconds one HTTP attempt may take, connect to last byte."
    )
    outbound_allow: Annotated[tuple[IPNetwork, ...], NoDecode] = Field(
        default=(),
        description=(
            "Comma-separated CIDRs that outbound requests may reach even though they are private, "
            "loopback, link-local or reserved (e.g. `127.0.0.1/32,10.20.0.0/16`)."
        ),
        examples=["10.20.0.0/16,127.0.0.1/32"],
    )
    endpoint_overrides: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        examples=['{"datadog": "https://dd-proxy.internal"}'],
        description=(
            "JSON object: integration key -> base URL that replaces the vendor host, e.g. "
            '`{"datadog": "http://127.0.0.1:9000"}` (egress proxy, air-gapped mirror, tests).'
        ),
    )
    manifest_dirs: Annotated[tuple[Path, ...], NoDecode] = Field(
        default=(),
        description=(
            "Comma-separated directories of manifest integrations: each sub-directory with a "
            "LaunchDarkly integration-framework `manifest.json` (an `auditLogEventsHook`) is an "
            "integration keyed by the sub-directory's name (docs/manifests.md)."
        ),
    )
    worker_concurrency: int = Field(
        default=64, ge=1, le=4096, description="HTTP attempts in flight per worker process."
    )
    configuration_concurrency: int = Field(
        default=16,
        ge=1,
        le=4096,
        description=(
            "HTTP attempts in flight for one configuration, per worker process (so with N "
            "workers, up to N times this). Attempts that have waited over a second for an answer "
            "stop counting against PUSHGATE_WORKER_CONCURRENCY, never against this limit: a "
            "receiver that hangs holds at most this many requests and delays nobody else."
        ),
    )
    worker_held_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024 * 1024,
        le=16 * 1024 * 1024 * 1024,
        description=(
            "Bytes of event entries one worker holds at most (claimed and waiting, or in "
            "flight): what bounds its memory, whatever the events' size. A claim takes at "
            "least one delivery."
        ),
    )
    breaker_threshold: int = Field(
        default=5,
        ge=1,
        le=10_000,
        description=(
            "Failed attempts in a row that pause a configuration (its breaker opens): its "
            "deliveries are kept, not attempted and not charged against their retries."
        ),
    )
    breaker_backoff: float = Field(
        default=5.0,
        gt=0,
        description=(
            "Seconds a paused configuration waits before one probe (a real pending delivery); "
            "doubled after each failed probe, up to PUSHGATE_BREAKER_BACKOFF_CAP."
        ),
    )
    breaker_backoff_cap: float = Field(
        default=300.0, gt=0, description="The longest wait between two probes, in seconds."
    )
    claim_batch_size: int = Field(
        default=500,
        ge=1,
        le=1000,
        description=(
            "Deliveries claimed and completed per transaction; unset, the worker inside "
            "`pushgate serve` uses 25 (its transactions share the event loop with the API). "
            "A transaction costs mostly per configuration it touches: fan-out gains most "
            "from large batches."
        ),
    )
    lease_seconds: float = Field(
        default=10.0,
        gt=0,
        description=(
            "How long a claimed delivery belongs to a worker before another may take it; "
            "renewed every third of it while held. A process that dies (kill -9) leaves its "
            "deliveries to others after at most this long."
        ),
    )
    poll_interval: float = Field(
        default=1.0, gt=0, description="Seconds between checks for due deliveries when idle."
    )
    error_log_size: int = Field(
        default=100, ge=1, le=10_000, description="Error-log entries kept per configuration."
    )
    attempt_log_size: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description=(
            "Attempts (successes too, with request and response) kept per configuration for "
            "the Activity page; up to a tenth more may be held between trims."
        ),
    )
    attempt_log_successes: float = Field(
        default=1.0,
        ge=0,
        le=100_000,
        description=(
            "Successful attempts per second per configuration that the attempt log keeps with "
            "their request and response, after a burst of 100 (each worker process on its "
            "own); every failure is kept, and the counters and charts count every attempt. "
            "0 keeps no successes."
        ),
    )
    attempt_body_limit: int = Field(
        default=4096,
        ge=0,
        le=1_048_576,
        description="Bytes of each request and response body kept with an attempt.",
    )
    response_body_limit: int = Field(
        default=4096,
        ge=256,
        le=1_048_576,
        description="Bytes of a response body that are read and kept in the error log.",
    )
    retention_days: float = Field(
        default=7.0,
        ge=0,
        description=(
            "Days a finished event and its deliveries are kept; 0 keeps them forever. Counters "
            "and the error log are not affected."
        ),
    )
    link_base_url: str | None = Field(
        default=None,
        description="Base URL that makes relative links in events absolute (your LD site).",
    )
    public_url: str | None = Field(
        default=None,
        description=(
            "The URL senders reach pushgate at (e.g. https://pushgate.example.com), for the "
            "ingest URLs of event sources. Unset: the API uses the address the request came "
            "to; the CLI shows the path only."
        ),
    )
    host: str = Field(
        default="127.0.0.1",
        description=(
            "Address `pushgate serve` listens on, and `pushgate worker`'s metrics server."
        ),
    )
    port: int = Field(
        default=8080,
        ge=0,
        le=65535,
        description="Port `pushgate serve` listens on; 0 picks a free one (logged).",
        examples=["8080"],
    )
    worker_metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description=(
            "Port on which `pushgate worker` serves /metrics, /healthz and /readyz (at "
            "PUSHGATE_HOST); unset: none. 0 picks a free one (logged)."
        ),
        examples=["9101"],
    )
    log_level: LogLevel = Field(
        default="info",
        description="debug, info, warning or error. debug also shows a CLI mistake's traceback.",
    )
    log_format: LogFormat = Field(
        default="auto",
        description=(
            "json (one JSON object a line), console (readable lines), or auto: console on a "
            "terminal, JSON otherwise. Every line the process writes, uvicorn's included."
        ),
    )
    access_log: bool = Field(
        default=False,
        description="Log every HTTP request `pushgate serve` answers (`http.request`).",
        examples=["true"],
    )
    shutdown_grace: float = Field(
        default=10.0, ge=0, description="Seconds in-flight deliveries may finish on shutdown."
    )

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ValueError("must be an absolute http:// or https:// URL without a query")
        return value.rstrip("/")

    @field_validator("retry_schedule", mode="before")
    @classmethod
    def _parse_schedule(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("retry_schedule")
    @classmethod
    def _check_schedule(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(delay < 0 for delay in value):
            raise ValueError("retry delays must not be negative")
        return value

    @field_validator("outbound_allow", "trusted_proxies", mode="before")
    @classmethod
    def _parse_networks(cls, value: Any) -> Any:
        return [ipaddress.ip_network(net, strict=False) for net in _split_commas(value) or []]

    @field_validator("manifest_dirs", mode="before")
    @classmethod
    def _parse_manifest_dirs(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("manifest_dirs")
    @classmethod
    def _check_manifest_dirs(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        for directory in value:
            if not directory.is_dir():
                raise ValueError(f"{directory} is not a directory")
        return value

    @field_validator("endpoint_overrides", mode="before")
    @classmethod
    def _parse_overrides(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else {}
            except ValueError as error:
                raise ValueError(f"not valid JSON ({error})") from None
        return value

    @field_validator("endpoint_overrides")
    @classmethod
    def _check_overrides(cls, value: dict[str, str]) -> dict[str, str]:
        for key, url in value.items():
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{key}: must be an http:// or https:// base URL")
        return value

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("database_schema")
    @classmethod
    def _check_schema(cls, value: str | None) -> str | None:
        if value is not None and not SCHEMA_NAME.fullmatch(value):
            raise ValueError("must be lower-case letters, digits and _ (at most 48 characters)")
        return value

    @field_validator("secret_key", "previous_secret_key")
    @classmethod
    def _check_secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < SECRET_KEY_MIN_LENGTH:
            raise ValueError(
                f"must be at least {SECRET_KEY_MIN_LENGTH} characters; e.g. the output of "
                "`openssl rand -hex 32`"
            )
        return value

    @field_validator("admin_token")
    @classmethod
    def _check_admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < ADMIN_TOKEN_MIN_LENGTH:
            raise ValueError(
                f"must be at least {ADMIN_TOKEN_MIN_LENGTH} characters (a short token can be "
                "guessed); e.g. the output of `openssl rand -hex 32`"
            )
        return value

    @model_validator(mode="after")
    def _check_sizes(self) -> Settings:
        if self.event_size_limit > self.request_size_limit:
            raise ValueError(
                "PUSHGATE_EVENT_SIZE_LIMIT: must not be larger than PUSHGATE_REQUEST_SIZE_LIMIT, "
                "which bounds every request body"
            )
        return self

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url:
            url = f"sqlite+aiosqlite:///{(self.data_dir / DATABASE_FILE).resolve()}"
            object.__setattr__(self, "database_url", url)
        else:
            object.__setattr__(self, "database_url", async_database_url(self.database_url))
        if self.database_schema is not None and self.is_sqlite:
            raise ValueError("PUSHGATE_DATABASE_SCHEMA: only PostgreSQL has schemas; unset it")
        if self.secret_key is None and not self.is_sqlite:
            # A key file is per host; processes on other hosts would make keys of their own and
            # could not open each other's configurations.
            raise ValueError(
                "PUSHGATE_SECRET_KEY: required with PostgreSQL (several processes, often on "
                "several hosts, must share it); set it to the same value in every process"
            )
        return self

    def breaker_policy(self) -> BreakerPolicy:
        """The circuit breaker these settings describe."""
        return BreakerPolicy(
            threshold=self.breaker_threshold,
            base=self.breaker_backoff,
            cap=max(self.breaker_backoff_cap, self.breaker_backoff),
        )

    @property
    def is_sqlite(self) -> bool:
        """True when the database is the embedded SQLite file."""
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database file (absolute), or None for PostgreSQL or an in-memory one."""
        if not self.is_sqlite:
            return None
        path = self.database_url.partition(":///")[2].partition("?")[0]
        return Path(path).resolve() if path and path != ":memory:" else None

    def database_label(self) -> str:
        """Which database this is, for people: never the password.

        `SQLite /srv/pushgate/data/pushgate.db`, `PostgreSQL pushgate@db1:5432/pushgate
        (schema tenant_a)`.
        """
        path = self.sqlite_path
        if self.is_sqlite:
            return f"SQLite {path}" if path is not None else "SQLite in memory"
        parts = urlsplit(self.database_url)
        where = parts.hostname or "localhost"
        if parts.port is not None:
            where += f":{parts.port}"
        user = f"{parts.username}@" if parts.username else ""
        label = f"PostgreSQL {user}{where}{parts.path}"
        if self.database_schema is not None:
            label += f" (schema {self.database_schema})"
        return label


def async_database_url(url: str) -> str:
    """Map plain `sqlite://` and `postgresql://` URLs to the async drivers pushgate uses;
    ValueError naming PUSHGATE_DATABASE_URL for anything else."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep:
        raise ValueError(f"PUSHGATE_DATABASE_URL: not a URL; use {DATABASE_URL_FORMS}")
    driver = DATABASE_SCHEMES.get(scheme.lower())
    if driver is None:
        raise ValueError(
            f"PUSHGATE_DATABASE_URL: {scheme.partition('+')[0]!r} databases are not supported; "
            f"use {DATABASE_URL_FORMS}"
        )
    return f"{driver}://{rest}"


def settings_problems(error: ValidationError) -> list[str]:
    """One line per wrong setting, naming its variable, never its value (it may be a secret),
    with an example of a good value where one helps."""
    lines = []
    for problem in error.errors():
        message = str(problem["msg"]).removeprefix("Value error, ")
        loc = problem["loc"]
        if not loc:  # a rule across settings: its message names the variables
            lines.append(message)
            continue
        name = str(loc[0])
        where = f"PUSHGATE_{name.upper()}"
        if len(loc) > 1 and isinstance(loc[1], int):
            message = f"item {loc[1] + 1}: {message}"
        field = Settings.model_fields.get(name)
        examples = field.examples if field is not None else None
        if examples:
            message += f" (e.g. {where}={examples[0]})"
        lines.append(f"{where}: {message}")
    return lines
