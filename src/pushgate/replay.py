"""Replay: queue a configuration's failed deliveries again, from the API, the UI or the CLI.

A delivery that ended failed (retries exhausted, or a permanent failure) in a window of event
time starts over: pending, due now, with a fresh retry schedule. One that a replay already
queued is pending, not failed, so a second replay does not send it twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pushgate.errors import InvalidRequest
from pushgate.store import Store

_KEYS = {"since", "until", "dryRun"}


@dataclass(frozen=True, slots=True)
class ReplayWindow:
    """Which failed deliveries to queue again: event time in [since, until), Unix ms."""

    since: int | None = None
    until: int | None = None
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """How many failed deliveries matched and how many were queued (0 for a dry run)."""

    matched: int
    queued: int
    delivery_ids: list[int]


def parse_window(body: object) -> ReplayWindow:
    """The API's body `{"since", "until", "dryRun"}`, every member optional."""
    if body is None:
        return ReplayWindow()
    if not isinstance(body, Mapping):
        raise InvalidRequest("body: must be a JSON object")
    unknown = sorted(set(body) - _KEYS)
    if unknown:
        raise InvalidRequest(f"{unknown[0]}: unknown field; known: since, until, dryRun")
    since, until = _time(body, "since"), _time(body, "until")
    if since is not None and until is not None and since > until:
        raise InvalidRequest("until: must not be before since")
    dry_run = body.get("dryRun", False)
    if not isinstance(dry_run, bool):
        raise InvalidRequest("dryRun: must be true or false")
    return ReplayWindow(since, until, dry_run)


def _time(body: Mapping[str, object], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    # bool is an int in Python; JSON true is not a time.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
        raise InvalidRequest(f"{key}: must be a time in Unix milliseconds")
    return value


async def replay(
    store: Store, configuration_id: str, window: ReplayWindow, *, now: int
) -> ReplayResult:
    """Queue again (or, for a dry run, count) the configuration's failed deliveries."""
    ids = await store.deliveries.replay(
        configuration_id, now=now, since=window.since, until=window.until, dry_run=window.dry_run
    )
    return ReplayResult(len(ids), 0 if window.dry_run else len(ids), ids)
