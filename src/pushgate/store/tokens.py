"""API tokens: stored as SHA-256 hashes, never in the clear."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from pushgate.domain import Role
from pushgate.errors import NotFound
from pushgate.limits import STORED_ID
from pushgate.store.configurations import new_id
from pushgate.store.database import reading
from pushgate.store.tables import tokens

# Tokens are 256-bit random values: a plain SHA-256 is enough, no slow KDF is needed.
TOKEN_PREFIX = "pgt-"
# How long a token found stays known without a query: the longest another process may still
# accept a token revoked elsewhere.
FOUND_FOR_SECONDS = 5.0
# Tokens remembered at most (a few per client in practice); past it, all are forgotten.
FOUND_AT_MOST = 10_000


@dataclass(frozen=True, slots=True)
class TokenRow:
    """A token's metadata (its value is only known at creation)."""

    id: str
    name: str
    role: Role
    created_at: int

    def to_json(self) -> dict[str, Any]:
        """`{"_id", "name", "role", "creationDate"}`, as the API lists tokens."""
        return {
            "_id": self.id,
            "name": self.name,
            "role": self.role.value,
            "creationDate": self.created_at,
        }


def hash_token(value: str) -> str:
    """The stored form of a token value."""
    return hashlib.sha256(value.encode()).hexdigest()


class TokenStore:
    """Create, find, list and revoke API tokens."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._found: dict[str, tuple[TokenRow, float]] = {}  # hash -> (row, until, monotonic)

    async def create(self, *, name: str, role: Role, now: int) -> tuple[TokenRow, str]:
        """A new token; returns its row and its value (shown once, never stored)."""
        value = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = TokenRow(id=new_id(), name=name, role=role, created_at=now)
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(tokens).values(
                    id=row.id,
                    name=name,
                    role=role.value,
                    token_hash=hash_token(value),
                    created_at=now,
                )
            )
        return row, value

    async def find(self, value: str) -> TokenRow | None:
        """The token with this value, if any.

        A token found is remembered for `FOUND_FOR_SECONDS`, so that a client posting event
        after event does not cost a query each; revoking it in this process forgets it at
        once, other processes stop accepting it within that time. Unknown values are never
        remembered (they are the attacker's, and the throttle's business).
        """
        digest = hash_token(value)
        now = time.monotonic()
        known = self._found.get(digest)
        if known is not None and known[1] > now:
            return known[0]
        async with reading(self._engine) as conn:
            row = (await conn.execute(select(tokens).where(tokens.c.token_hash == digest))).first()
        if row is None:
            self._found.pop(digest, None)
            return None
        found = TokenRow(id=row.id, name=row.name, role=Role(row.role), created_at=row.created_at)
        if len(self._found) >= FOUND_AT_MOST:
            self._found.clear()
        self._found[digest] = (found, now + FOUND_FOR_SECONDS)
        return found

    async def get(self, token_id: str) -> TokenRow | None:
        """The token with this id, if it still exists."""
        if not STORED_ID.fullmatch(token_id):
            return None
        async with reading(self._engine) as conn:
            row = (await conn.execute(select(tokens).where(tokens.c.id == token_id))).first()
        if row is None:
            return None
        return TokenRow(id=row.id, name=row.name, role=Role(row.role), created_at=row.created_at)

    async def all(self) -> list[TokenRow]:
        """Every token, oldest first."""
        async with reading(self._engine) as conn:
            rows = (await conn.execute(select(tokens).order_by(tokens.c.created_at))).all()
        return [TokenRow(r.id, r.name, Role(r.role), r.created_at) for r in rows]

    async def revoke(self, token_id: str) -> None:
        """Delete a token; NotFound when there is none with that id."""
        if not STORED_ID.fullmatch(token_id):
            raise NotFound(f"no token with id {token_id!r}")
        async with self._engine.begin() as conn:
            result = await conn.execute(delete(tokens).where(tokens.c.id == token_id))
        self._found = {key: kept for key, kept in self._found.items() if kept[0].id != token_id}
        if result.rowcount != 1:
            raise NotFound(f"no token with id {token_id}")
