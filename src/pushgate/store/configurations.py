"""Configurations: create, read (with status and health), change, delete."""

from __future__ import annotations

import secrets as random_ids
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from pushgate.breaker import Breaker
from pushgate.domain import TURNED_OFF, DeliveryState
from pushgate.errors import Conflict, NotFound
from pushgate.limits import STORED_ID
from pushgate.store.attempts import AttemptFilter, AttemptRow, read_attempts
from pushgate.store.database import Transactions, reading
from pushgate.store.rollup import Interval, read_intervals
from pushgate.store.status import (
    ErrorEntry,
    Health,
    Status,
    load_breakers,
    read_errors,
    read_health,
    read_statuses,
    save_breaker,
)
from pushgate.store.tables import configurations, deliveries


@dataclass(frozen=True, slots=True)
class Enabled:
    """The configurations that are on: `versions` of all, `statements` of those asked for."""

    versions: dict[str, int]
    statements: dict[str, list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class ConfigurationRow:
    """A stored configuration; `config` holds non-secret fields, `secrets` the sealed rest."""

    id: str
    integration_key: str
    name: str
    on: bool
    tags: list[str]
    config: dict[str, Any]
    secrets: str | None
    statements: list[dict[str, Any]]
    version: int
    created_at: int
    updated_at: int
    status: Status = field(default_factory=Status)
    health: Health = field(default_factory=Health)


def new_id() -> str:
    """A 24-hex-digit id, the shape LaunchDarkly ids have."""
    return random_ids.token_hex(12)


def _row(
    row: Row[Any], status: Status | None = None, health: Health | None = None
) -> ConfigurationRow:
    return ConfigurationRow(
        id=row.id,
        integration_key=row.integration_key,
        name=row.name,
        on=row.on,
        tags=list(row.tags),
        config=dict(row.config),
        secrets=row.secrets,
        statements=list(row.statements),
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        status=status or Status(),
        health=health or Health(),
    )


def _after_update(conn: Connection, current: ConfigurationRow, on: bool, now: int) -> None:
    """What a change means for the configuration's deliveries and breaker."""
    breaker = load_breakers(conn, [current.id], lock=True).get(current.id, Breaker())
    if on and not current.on:
        # Turned on again: healthy; what was held (after a 410) goes out now.
        save_breaker(conn, current.id, Breaker(since=now))
    elif current.on and not on:
        # Turned off by a user: what still waits is not sent (LaunchDarkly sends nothing to a
        # configuration that is off). Deliveries a live worker holds are its to finish.
        conn.execute(
            update(deliveries)
            .where(
                deliveries.c.configuration_id == current.id,
                deliveries.c.state == DeliveryState.PENDING.value,
                or_(deliveries.c.lease_owner.is_(None), deliveries.c.available_at <= now),
            )
            .values(state=DeliveryState.CANCELLED.value, lease_owner=None, completed_at=now)
        )
        save_breaker(conn, current.id, Breaker(reason=TURNED_OFF, since=now))
    elif breaker.paused_until is not None and breaker.paused_until > now:
        # Changed while paused (a new key, a new URL): probe now rather than wait.
        save_breaker(conn, current.id, replace(breaker, paused_until=now))


def _check_id(integration_key: str, configuration_id: str) -> None:
    """NotFound, without a query, for an id no configuration can have (`new_id`'s shape)."""
    if not STORED_ID.fullmatch(configuration_id):
        raise NotFound(f"no {integration_key} configuration with id {configuration_id!r}")


class ConfigurationStore:
    """Create, read, change and delete configurations; read their status and error log."""

    def __init__(
        self, engine: AsyncEngine, transactions: Transactions, *, recent_errors: int = 10
    ) -> None:
        self._engine = engine
        self._tx = transactions
        self._recent_errors = recent_errors

    async def create(
        self,
        *,
        integration_key: str,
        name: str,
        on: bool,
        tags: Sequence[str],
        config: dict[str, Any],
        secrets: str | None,
        statements: Sequence[dict[str, Any]],
        now: int,
    ) -> ConfigurationRow:
        """Store a new configuration and return it."""
        values = {
            "id": new_id(),
            "integration_key": integration_key,
            "name": name,
            "on": on,
            "tags": list(tags),
            "config": config,
            "secrets": secrets,
            "statements": list(statements),
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
        async with self._engine.begin() as conn:
            await conn.execute(insert(configurations).values(values))
        return ConfigurationRow(**values)  # type: ignore[arg-type]

    async def get(self, integration_key: str, configuration_id: str) -> ConfigurationRow:
        """One configuration with its status; NotFound when the key or id does not match."""
        _check_id(integration_key, configuration_id)
        async with reading(self._engine) as conn:
            row = (
                await conn.execute(
                    select(configurations).where(
                        configurations.c.id == configuration_id,
                        configurations.c.integration_key == integration_key,
                    )
                )
            ).first()
            if row is None:
                raise NotFound(f"no {integration_key} configuration with id {configuration_id}")
            status = await read_statuses(conn, [row.id], recent_errors=self._recent_errors)
            health = await read_health(conn, [row.id])
        return _row(row, status.get(row.id), health.get(row.id))

    async def all(self, integration_key: str | None = None) -> list[ConfigurationRow]:
        """Configurations (of one integration, or all), oldest first, with status."""
        query = select(configurations).order_by(configurations.c.created_at, configurations.c.id)
        if integration_key is not None:
            query = query.where(configurations.c.integration_key == integration_key)
        async with reading(self._engine) as conn:
            rows = (await conn.execute(query)).all()
            ids = [row.id for row in rows]
            statuses = await read_statuses(conn, ids, recent_errors=self._recent_errors)
            health = await read_health(conn, ids)
        return [_row(row, statuses.get(row.id), health.get(row.id)) for row in rows]

    async def enabled(self, known: Mapping[str, int]) -> Enabled:
        """The configurations that are on, as versions, with the policy of each one `known`
        does not hold at its current version (ingest keeps the parsed rest)."""

        def work(conn: Connection) -> Enabled:
            versions = dict(
                tuple(row)
                for row in conn.execute(
                    select(configurations.c.id, configurations.c.version).where(
                        configurations.c.on.is_(True)
                    )
                )
            )
            stale = [cid for cid, version in versions.items() if known.get(cid) != version]
            statements = (
                {
                    row.id: list(row.statements)
                    for row in conn.execute(
                        select(configurations.c.id, configurations.c.statements).where(
                            configurations.c.id.in_(stale)
                        )
                    )
                }
                if stale
                else {}
            )
            return Enabled(versions, statements)

        return await self._tx.run(work)

    async def load(self, ids: Iterable[str]) -> dict[str, ConfigurationRow]:
        """Configurations by id, without status (for the delivery engine)."""
        wanted = list(set(ids))
        async with reading(self._engine) as conn:
            rows = (
                await conn.execute(select(configurations).where(configurations.c.id.in_(wanted)))
            ).all()
        return {row.id: _row(row) for row in rows}

    async def update(
        self, current: ConfigurationRow, *, now: int, **changes: Any
    ) -> ConfigurationRow:
        """Apply `changes` if nobody changed the configuration since `current` was read."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(configurations)
                .where(
                    configurations.c.id == current.id,
                    configurations.c.version == current.version,
                )
                .values(**changes, version=current.version + 1, updated_at=now)
            )
            if result.rowcount != 1:
                raise Conflict("the configuration was changed by another request; retry")
            await conn.run_sync(_after_update, current, bool(changes.get("on", current.on)), now)
        return await self.get(current.integration_key, current.id)

    async def delete(self, integration_key: str, configuration_id: str) -> None:
        """Delete a configuration with its pending deliveries, status and error log."""
        _check_id(integration_key, configuration_id)
        async with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Take the locks a worker recording outcomes takes, in its order (pending
                # delivery rows by id, then the configuration), so the two cannot deadlock.
                await conn.execute(
                    select(deliveries.c.id)
                    .where(
                        deliveries.c.configuration_id == configuration_id,
                        deliveries.c.state == DeliveryState.PENDING.value,
                    )
                    .order_by(deliveries.c.id)
                    .with_for_update()
                )
            result = await conn.execute(
                delete(configurations).where(
                    configurations.c.id == configuration_id,
                    configurations.c.integration_key == integration_key,
                )
            )
        if result.rowcount != 1:
            raise NotFound(f"no {integration_key} configuration with id {configuration_id}")

    async def sealed(self) -> dict[str, str]:
        """Every configuration's sealed secrets, by configuration id (those with secrets)."""
        query = select(configurations.c.id, configurations.c.secrets).where(
            configurations.c.secrets.is_not(None)
        )
        async with reading(self._engine) as conn:
            return {row.id: row.secrets for row in await conn.execute(query)}

    async def reseal(self, configuration_id: str, *, sealed: str, resealed: str) -> bool:
        """Replace a configuration's sealed secrets `sealed` by `resealed` (the same secrets
        under another key); False, changing nothing, when they are no longer `sealed` (a
        save came first). The version stays: what the secrets say has not changed."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(configurations)
                .where(
                    configurations.c.id == configuration_id,
                    configurations.c.secrets == sealed,
                )
                .values(secrets=resealed)
            )
        return bool(result.rowcount == 1)

    async def errors(
        self, configuration_id: str, *, limit: int, before: int | None = None
    ) -> list[ErrorEntry]:
        """The error log, newest first; `before` is the last id of the previous page."""
        async with reading(self._engine) as conn:
            return await read_errors(conn, configuration_id, limit=limit, before=before)

    async def attempts(
        self,
        configuration_id: str,
        wanted: AttemptFilter,
        *,
        limit: int,
        before: int | None = None,
        detail: bool = False,
    ) -> list[AttemptRow]:
        """The attempt log, newest first, filtered; `before` is the last id of the previous
        page; `detail` adds each attempt's request and response."""
        async with reading(self._engine) as conn:
            return await read_attempts(
                conn, configuration_id, wanted, limit=limit, before=before, detail=detail
            )

    async def activity(
        self, configuration_id: str, *, now: int, size_ms: int, count: int
    ) -> list[Interval]:
        """Successes, errors and latency of the last `count` intervals of `size_ms` (an hour
        or a day), oldest first, from the hourly rollup."""
        async with reading(self._engine) as conn:
            return await read_intervals(
                conn, configuration_id, now=now, size_ms=size_ms, count=count
            )
