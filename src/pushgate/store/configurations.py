"""Configurations, their status counters and their error log."""

from __future__ import annotations

import secrets as random_ids
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from pushgate.domain import DeliveryState
from pushgate.errors import Conflict, NotFound
from pushgate.limits import STORED_ID
from pushgate.store.tables import (
    configuration_status,
    configurations,
    deliveries,
    error_log,
)


@dataclass(frozen=True, slots=True)
class ErrorEntry:
    """One failed attempt, as the error log shows it."""

    id: int
    event_id: str
    attempt: int
    timestamp: int
    status_code: int | None
    response_body: str | None
    error: str | None
    hint: str | None
    will_retry: bool


@dataclass(frozen=True, slots=True)
class Status:
    """Counters and timestamps of one configuration (sums over shards)."""

    success_count: int = 0
    error_count: int = 0
    last_success: int | None = None
    last_error: int | None = None
    errors: tuple[ErrorEntry, ...] = ()


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


def new_id() -> str:
    """A 24-hex-digit id, the shape LaunchDarkly ids have."""
    return random_ids.token_hex(12)


def _row(row: Row[Any], status: Status | None = None) -> ConfigurationRow:
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
    )


def _error(row: Row[Any]) -> ErrorEntry:
    return ErrorEntry(
        id=row.id,
        event_id=row.event_id,
        attempt=row.attempt,
        timestamp=row.timestamp,
        status_code=row.status_code,
        response_body=row.response_body,
        error=row.error,
        hint=row.hint,
        will_retry=row.will_retry,
    )


def _check_id(integration_key: str, configuration_id: str) -> None:
    """NotFound, without a query, for an id no configuration can have (`new_id`'s shape)."""
    if not STORED_ID.fullmatch(configuration_id):
        raise NotFound(f"no {integration_key} configuration with id {configuration_id!r}")


class ConfigurationStore:
    """Create, read, change and delete configurations; read their status and error log."""

    def __init__(self, engine: AsyncEngine, *, recent_errors: int = 10) -> None:
        self._engine = engine
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
        async with self._engine.connect() as conn:
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
            status = await self._statuses(conn, [configuration_id])
        return _row(row, status.get(configuration_id))

    async def all(self, integration_key: str | None = None) -> list[ConfigurationRow]:
        """Configurations (of one integration, or all), oldest first, with status."""
        query = select(configurations).order_by(configurations.c.created_at, configurations.c.id)
        if integration_key is not None:
            query = query.where(configurations.c.integration_key == integration_key)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
            statuses = await self._statuses(conn, [row.id for row in rows])
        return [_row(row, statuses.get(row.id)) for row in rows]

    async def list_enabled(self) -> list[ConfigurationRow]:
        """Configurations that are on (for matching events); status left empty."""
        query = select(configurations).where(configurations.c.on.is_(True))
        async with self._engine.connect() as conn:
            return [_row(row) for row in (await conn.execute(query)).all()]

    async def load(self, ids: Iterable[str]) -> dict[str, ConfigurationRow]:
        """Configurations by id, without status (for the delivery engine)."""
        wanted = list(set(ids))
        async with self._engine.connect() as conn:
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

    async def errors(
        self, configuration_id: str, *, limit: int, before: int | None = None
    ) -> list[ErrorEntry]:
        """The error log, newest first; `before` is the last id of the previous page."""
        query = (
            select(error_log)
            .where(error_log.c.configuration_id == configuration_id)
            .order_by(error_log.c.id.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(error_log.c.id < before)
        async with self._engine.connect() as conn:
            return [_error(row) for row in (await conn.execute(query)).all()]

    async def _statuses(self, conn: Any, ids: list[str]) -> dict[str, Status]:
        if not ids:
            return {}
        totals = (
            await conn.execute(
                select(
                    configuration_status.c.configuration_id,
                    func.sum(configuration_status.c.success_count).label("success_count"),
                    func.sum(configuration_status.c.error_count).label("error_count"),
                    func.max(configuration_status.c.last_success).label("last_success"),
                    func.max(configuration_status.c.last_error).label("last_error"),
                )
                .where(configuration_status.c.configuration_id.in_(ids))
                .group_by(configuration_status.c.configuration_id)
            )
        ).all()
        ranked = (
            select(
                error_log,
                func.row_number()
                .over(partition_by=error_log.c.configuration_id, order_by=error_log.c.id.desc())
                .label("rank"),
            )
            .where(error_log.c.configuration_id.in_(ids))
            .subquery()
        )
        recent = (
            await conn.execute(
                select(ranked)
                .where(ranked.c.rank <= self._recent_errors)
                .order_by(ranked.c.configuration_id, ranked.c.id.desc())
            )
        ).all()
        errors: dict[str, list[ErrorEntry]] = {}
        for row in recent:
            errors.setdefault(row.configuration_id, []).append(_error(row))
        return {
            row.configuration_id: Status(
                success_count=int(row.success_count),
                error_count=int(row.error_count),
                last_success=row.last_success,
                last_error=row.last_error,
                errors=tuple(errors.get(row.configuration_id, ())),
            )
            for row in totals
        }
