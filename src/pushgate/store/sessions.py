"""Web UI sessions on the server: started at sign-in, looked up on every page, ended at sign-out."""

from __future__ import annotations

import hashlib

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from pushgate.store.database import reading
from pushgate.store.tables import web_sessions


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    """Which browser sessions are open. Rows are keyed by a hash of the session id."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def start(self, session_id: str, *, subject: str, now: int, expires_at: int) -> None:
        """Open a session for `subject` until `expires_at`; sessions past their end go."""
        async with self._engine.begin() as conn:
            await conn.execute(delete(web_sessions).where(web_sessions.c.expires_at <= now))
            await conn.execute(
                insert(web_sessions).values(
                    id_hash=_hash(session_id),
                    subject=subject,
                    created_at=now,
                    expires_at=expires_at,
                )
            )

    async def subject(self, session_id: str, *, now: int) -> str | None:
        """The subject of an open session, or None when it ended or expired."""
        async with reading(self._engine) as conn:
            row = (
                await conn.execute(
                    select(web_sessions.c.subject).where(
                        web_sessions.c.id_hash == _hash(session_id),
                        web_sessions.c.expires_at > now,
                    )
                )
            ).first()
        return None if row is None else str(row.subject)

    async def end(self, session_id: str) -> None:
        """End a session (ending one that is not open does nothing)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(web_sessions).where(web_sessions.c.id_hash == _hash(session_id))
            )
