"""What the CLI shows people: the status table, the error log, tokens and a validation report.

Each table keeps to four short columns of a few lines each, so that it reads at 80 columns;
`--json` prints the API's own shapes instead (cli.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from rich.markup import escape
from rich.table import Table

from pushgate.configurations import health_of
from pushgate.store import ConfigurationRow, ErrorEntry, TokenRow
from pushgate.validation import ValidationReport

# Past this age a moment is shown as its date: "412d ago" says less than "2026-01-02".
DATE_AFTER_SECONDS = 7 * 86_400
# Characters of a response body or error shown in a table cell (the JSON has all of it).
EXCERPT = 160


def status_table(rows: Sequence[ConfigurationRow], now: int) -> Table:
    """Every configuration: name, integration and id; health; delivered; errors."""
    table = Table("configuration", "health", "delivered", "errors", show_lines=True)
    for row in rows:
        st, health = row.status, health_of(row)
        lines = [f"[bold]{health.state.value}[/bold]", f"{health.pending} pending"]
        if health.resumes_at is not None:
            lines.append(f"resumes {ago(health.resumes_at, now)}")
        if health.reason:
            lines.append(f"[dim]{escape(health.reason)}[/dim]")
        table.add_row(
            f"{escape(row.name)}\n[dim]{row.integration_key}[/dim]\n{row.id}",
            "\n".join(lines),
            f"{st.success_count}\n{ago(st.last_success, now)}",
            f"{st.error_count}\n{ago(st.last_error, now)}",
        )
    return table


def error_table(entries: Sequence[ErrorEntry], now: int) -> Table:
    """Error-log entries, newest first: when, the answer, what was wrong, the event."""
    table = Table("when", "answer", "what", "event", show_lines=True)
    for entry in entries:
        answer = f"HTTP {entry.status_code}" if entry.status_code is not None else "no answer"
        what = [escape(_excerpt(entry.error or entry.response_body or ""))]
        if entry.hint:
            what.append(f"[dim]{escape(_excerpt(entry.hint))}[/dim]")
        table.add_row(
            f"{ago(entry.timestamp, now)}\n[dim]{_iso(entry.timestamp)}[/dim]",
            f"{answer}\n[dim]{'will retry' if entry.will_retry else 'final'}[/dim]",
            "\n".join(line for line in what if line),
            f"{escape(entry.event_id)}\n[dim]attempt {entry.attempt}[/dim]",
        )
    return table


def token_table(tokens: Sequence[TokenRow], now: int) -> Table:
    """Tokens (never their values): id, name, role, created."""
    table = Table("id", "name", "role", "created")
    for token in tokens:
        table.add_row(token.id, escape(token.name), token.role.value, ago(token.created_at, now))
    return table


def validation_lines(report: ValidationReport) -> list[str]:
    """A validation report in words: the outcome first, then what came back and the hint."""
    took = f"{report.duration_ms} ms"
    if report.ok:
        return [f"[green]ok[/green]: the tool accepted the test event ({took})"]
    answer = f"HTTP {report.status_code}" if report.status_code is not None else "no answer"
    lines = [f"[red]failed[/red]: {answer} ({took})"]
    for text in (report.error, report.response_body, report.hint):
        if text:
            lines.append(escape(_excerpt(text)))
    return lines


def ago(ms: int | None, now: int) -> str:
    """ "3m ago", "in 20s", "2026-11-30" (more than a week away), or "never"."""
    if ms is None:
        return "never"
    seconds = (now - ms) / 1000
    if abs(seconds) >= DATE_AFTER_SECONDS:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")
    unit, size = next(
        (
            (unit, size)
            for unit, size in (("d", 86_400), ("h", 3600), ("m", 60))
            if abs(seconds) >= size
        ),
        ("s", 1),
    )
    amount = f"{int(abs(seconds) // size)}{unit}"
    return f"{amount} ago" if seconds >= 0 else f"in {amount}"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT else text[: EXCERPT - 1] + "…"
