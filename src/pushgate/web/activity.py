"""The Activity page: a configuration's recent attempts, filtered, each with its request and
response; "Resend" for one event and "Resend failed deliveries" for all that failed.

    /settings/integrations/{key}/{id}/activity   the page (GET filters: outcome, status, event,
                                                 range; `before` pages)
    /settings/integrations/{key}/{id}/resend     resend one event (POST, writers)
    /settings/integrations/{key}/{id}/errors     the old error log: redirects to failures
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse
from markupsafe import Markup

from pushgate.api.deps import RuntimeDep
from pushgate.limits import MAX_ROW_ID
from pushgate.replay import ReplayWindow, replay
from pushgate.runtime import Runtime
from pushgate.store.attempts import OUTCOMES, AttemptFilter
from pushgate.store.rollup import DAY_MS, HOUR_MS, Interval, combined
from pushgate.web import charts
from pushgate.web.pages import INTEGRATIONS
from pushgate.web.routing import WebRoute, see_other
from pushgate.web.session import SessionDep, WriterDep
from pushgate.web.templating import renderer, utc

router = APIRouter(route_class=WebRoute, include_in_schema=False)
# Attempts per page; the store keeps PUSHGATE_ATTEMPT_LOG_SIZE (1,000 by default).
ATTEMPTS_PER_PAGE = 25
# The time ranges the filter offers: name, label, length.
RANGES = {"1h": ("Last hour", HOUR_MS), "24h": ("Last 24 hours", 24 * HOUR_MS)}
RANGES["7d"] = ("Last 7 days", 7 * 24 * HOUR_MS)
Text = Annotated[str, Query(max_length=64)]


@dataclass(frozen=True, slots=True)
class Filters:
    """The page's filters as typed (empty: any), and what is wrong with them."""

    outcome: str = ""
    status: str = ""
    event: str = ""
    range: str = ""

    @property
    def problem(self) -> str | None:
        if self.status and not (self.status.isdigit() and 100 <= int(self.status) <= 599):
            return "A status code is a number from 100 to 599."
        return None

    def wanted(self, now: int) -> AttemptFilter:
        """The store's filter (an invalid field is left out)."""
        return AttemptFilter(
            outcome=self.outcome if self.outcome in OUTCOMES else None,
            status_code=int(self.status) if self.status and self.problem is None else None,
            event_id=self.event or None,
            since=now - RANGES[self.range][1] if self.range in RANGES else None,
        )

    def url(self, path: str, **extra: Any) -> str:
        """`path` with these filters (and `extra`) as its query."""
        values = {
            "outcome": self.outcome,
            "status": self.status,
            "event": self.event,
            "range": self.range,
            **extra,
        }
        query = urlencode({k: v for k, v in values.items() if v not in ("", None)})
        return f"{path}?{query}" if query else path

    @property
    def active(self) -> bool:
        return bool(self.outcome or self.status or self.event or self.range)


@router.get(INTEGRATIONS + "/{integration_key}/{configuration_id}/activity")
async def activity(
    request: Request,
    integration_key: str,
    configuration_id: str,
    session: SessionDep,
    rt: RuntimeDep,
    outcome: Text = "",
    status: Text = "",
    event: Text = "",
    range: Text = "",
    before: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
    resent: Annotated[int | None, Query(ge=0, le=MAX_ROW_ID)] = None,
    resent_event: Text = "",
) -> Response:
    """The attempts of one configuration, newest first, a page at a time."""
    integration = rt.catalog.get(integration_key)
    row = await rt.store.configurations.get(integration_key, configuration_id)
    filters = Filters(outcome, status, event, range)
    entries = await rt.store.configurations.attempts(
        row.id,
        filters.wanted(rt.clock()),
        limit=ATTEMPTS_PER_PAGE,
        before=before,
        detail=True,
    )
    older = entries[-1].id if len(entries) == ATTEMPTS_PER_PAGE else None
    now = rt.clock()
    charts = [
        await _chart(rt, row.id, now, "Last 24 hours, by hour", HOUR_MS, 24),
        await _chart(rt, row.id, now, "Last 7 days, by day", DAY_MS, 7),
    ]
    failed = await replay(rt.store, row.id, ReplayWindow(dry_run=True), now=rt.clock())
    flash = None
    if resent is not None:
        flash = f"Queued {resent:,} failed deliver{'y' if resent == 1 else 'ies'} to send again."
    elif resent_event:
        flash = f"Queued event {resent_event} to send again."
    context = {
        "session": session,
        "integration": integration,
        "row": row,
        "entries": entries,
        "filters": filters,
        "ranges": RANGES,
        "older": older,
        "paged": before is not None,
        "failed": failed.matched,
        "flash": flash,
        "problem": filters.problem,
        "charts": charts,
    }
    return renderer().page(request, "activity.html", context)


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart of the page: its heading, the SVG, and the sums it shows."""

    heading: str
    svg: Markup
    total: Interval


def _described(interval: Interval, size_ms: int) -> str:
    when = utc(interval.start)[: -len(":00 UTC")] + " UTC"
    text = f"{when}: {interval.successes:,} successes, {interval.errors:,} errors"
    if interval.p50 is not None:
        text += f", p50 ≤ {interval.p50:,} ms, p95 ≤ {interval.p95:,} ms"
    return text if size_ms == HOUR_MS else "Day from " + text


async def _chart(
    rt: Runtime, configuration_id: str, now: int, heading: str, size_ms: int, count: int
) -> Chart:
    intervals = await rt.store.configurations.activity(
        configuration_id, now=now, size_ms=size_ms, count=count
    )
    titles = [_described(i, size_ms) for i in intervals]
    svg = charts.bars(intervals, label=f"Successes and errors, {heading.lower()}", titles=titles)
    return Chart(heading, svg, combined(intervals))


@router.get(INTEGRATIONS + "/{integration_key}/{configuration_id}/errors")
async def error_log(integration_key: str, configuration_id: str) -> Response:
    """The error log is the Activity page's failures now: old links and bookmarks land there."""
    return RedirectResponse(
        f"{INTEGRATIONS}/{integration_key}/{configuration_id}/activity?outcome=failure",
        status_code=301,
    )


@router.post(INTEGRATIONS + "/{integration_key}/{configuration_id}/resend")
async def resend_event(
    request: Request,
    integration_key: str,
    configuration_id: str,
    _session: WriterDep,
    rt: RuntimeDep,
) -> Response:
    """Resend one event to this configuration (its delivery queued again, fresh retries)."""
    row = await rt.store.configurations.get(integration_key, configuration_id)
    event_id = str((await request.form()).get("event_id", ""))[:64]
    base = f"{INTEGRATIONS}/{integration_key}/{row.id}/activity"
    if event_id and await rt.store.deliveries.resend(row.id, event_id, now=rt.clock()):
        rt.wake_worker()
        return see_other(f"{base}?{urlencode({'event': event_id, 'resent_event': event_id})}")
    return see_other(f"{base}?{urlencode({'event': event_id})}")
