"""Table definitions: the one description of the schema; Alembic migrations must equal it.

Times are Unix milliseconds (BIGINT) everywhere: what the API returns, cheap to compare, and
the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a real BIGINT identity.
Id = BigInteger().with_variant(Integer(), "sqlite")


configurations = Table(
    "configurations",
    metadata,
    Column("id", String(24), primary_key=True),
    Column("integration_key", String(64), nullable=False, index=True),
    Column("name", String(256), nullable=False),
    Column("on", Boolean, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("config", JSON, nullable=False),  # non-secret fields, defaults filled in
    Column("secrets", Text, nullable=True),  # secret fields, sealed (see sealing.py)
    Column("statements", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# Counters are split in shards so that many workers do not queue on one row; read as a sum.
# Each process picks one shard; 16 keeps a handful of workers apart and a read at 16 rows.
STATUS_SHARDS = 16
configuration_status = Table(
    "configuration_status",
    metadata,
    Column(
        "configuration_id",
        String(24),
        ForeignKey("configurations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("shard", SmallInteger, primary_key=True),
    Column("success_count", BigInteger, nullable=False),
    Column("error_count", BigInteger, nullable=False),
    Column("last_success", BigInteger, nullable=True),
    Column("last_error", BigInteger, nullable=True),
)

# One breaker per configuration (breaker.py): a row appears with the first outcome that
# changes it. No row means healthy.
configuration_health = Table(
    "configuration_health",
    metadata,
    Column(
        "configuration_id",
        String(24),
        ForeignKey("configurations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("failures", Integer, nullable=False),  # failed attempts in a row
    Column("opened", Integer, nullable=False),  # openings since the last success (back-off)
    Column("paused_until", BigInteger, nullable=True),  # set while open: the probe is due then
    Column("off", Boolean, nullable=False),  # turned off by the receiver (410 Gone)
    Column("reason", Text, nullable=True),
    Column("since", BigInteger, nullable=True),  # when the current state began
)

error_log = Table(
    "error_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "configuration_id",
        String(24),
        ForeignKey("configurations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event_id", String(64), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("response_body", Text, nullable=True),
    Column("error", Text, nullable=True),  # what happened when there was no HTTP answer
    Column("hint", Text, nullable=True),
    Column("will_retry", Boolean, nullable=False),
    Index("ix_error_log_configuration_id_id", "configuration_id", "id"),
)

# The most recent attempts of each configuration, successes too (store/attempts.py), trimmed
# to `attempt_log_size`; `detail` is the request and response as JSON, secrets masked.
attempts = Table(
    "attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "configuration_id",
        String(24),
        ForeignKey("configurations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event_id", String(64), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("duration_ms", Integer, nullable=False),
    Column("will_retry", Boolean, nullable=False),
    Column("next_at", BigInteger, nullable=True),
    Column("error", Text, nullable=True),
    Column("hint", Text, nullable=True),
    Column("detail", Text, nullable=True),
    Index("ix_attempts_configuration_id_id", "configuration_id", "id"),
)

# Upper bounds (ms) of the latency histogram's buckets; one more bucket holds what is slower.
LATENCY_BOUNDS_MS = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)

# Per configuration and UTC hour: successes, errors, latency histogram (store/rollup.py), in
# shards like configuration_status (summed on read).
activity_hours = Table(
    "activity_hours",
    metadata,
    Column(
        "configuration_id",
        String(24),
        ForeignKey("configurations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("hour", BigInteger, primary_key=True),
    Column("shard", SmallInteger, primary_key=True),
    Column("successes", BigInteger, nullable=False),
    Column("errors", BigInteger, nullable=False),
    *(Column(f"lat_{i}", BigInteger, nullable=False) for i in range(len(LATENCY_BOUNDS_MS) + 1)),
)

events = Table(
    "events",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("date", BigInteger, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("received_at", BigInteger, nullable=False, index=True),  # retention
    Column("payload", JSON, nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "event_id",
        String(64),
        ForeignKey("events.id", ondelete="CASCADE"),
        nullable=False,
        index=True,  # retention deletes events, and their deliveries with them
    ),
    Column(
        "configuration_id",
        String(24),
        ForeignKey("configurations.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    # Due time while waiting; lease expiry while a worker holds it. Due and expired look alike.
    Column("available_at", BigInteger, nullable=False),
    Column("lease_owner", String(64), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("completed_at", BigInteger, nullable=True),
    Index(
        "ix_deliveries_due",
        "available_at",
        sqlite_where=text("state = 'pending'"),
        postgresql_where=text("state = 'pending'"),
    ),
    # Fair claims take each configuration's due deliveries in turn; health counts pending.
    Index(
        "ix_deliveries_configuration_due",
        "configuration_id",
        "available_at",
        sqlite_where=text("state = 'pending'"),
        postgresql_where=text("state = 'pending'"),
    ),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(24), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
)

# Signed-in browsers, one row per session: signing out deletes it, so a copied cookie stops
# working then, not when it expires. The key is the SHA-256 of the cookie's random session id:
# what the table holds cannot be turned back into a cookie.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("subject", String(64), nullable=False),  # the token (or admin fingerprint) signed in
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False, index=True),  # pruning expired rows
)

# Event sources (sources.py): signed endpoints senders post events to. `secret` is sealed like
# configuration secrets; the counters are what the Sources page shows.
sources = Table(
    "sources",
    metadata,
    Column("id", String(24), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("secret", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("events_received", BigInteger, nullable=False),  # new events, repeats not counted
    Column("last_event_at", BigInteger, nullable=True),  # the last signed request ingested
    Column("last_event_id", String(64), nullable=True),
)
