"""Every benchmark of pushgate in one run: `bench/run [--quick] [--only NAME,…] [--no-write]`.

Each scenario measures pushgate and a reference in the same run on the same machine and
prints both and their ratio beside its target. The sink is Debian's nginx (`sinks.py`; the
aiohttp sink stands in, and says so, when nginx is missing). The run rewrites the measured
part of docs/benchmarks.md (between its markers) with the machine, the versions, the
parameters and every figure, and exits 1 when a figure could not be measured.

Scenarios (names for `--only`): ingest, latency, drain, fanout, mixed, backlog, isolation,
postgresql, celery.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import aiohttp

import celery_reference
import ingest as ingest_bench
import isolation as isolation_bench
import scale as scale_bench
from pushgate.logs import configure
from serving import TOKEN, pushgate_serve
from sinks import NGINX, Sink, sink
from workloads import cpu_count, drain_with_worker, prepare, replay

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench/run: begin -->", "<!-- bench/run: end -->"
CONCURRENCY = 64


@dataclass
class Figure:
    """One measured figure, its reference, and the target of their ratio."""

    scenario: str
    what: str
    ours: float
    reference: float | None
    reference_what: str
    ratio: float | None
    target: str
    met: bool
    unit: str
    parameters: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Run:
    """Sizes of one run (`--quick` shrinks them for a look, not for the record)."""

    quick: bool
    figures: list[Figure] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    capacity: float | None = None  # single-event ingest capacity, for the latency scenario

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    @property
    def rounds(self) -> int:
        """Rounds of a scenario whose figure is a median."""
        return 1 if self.quick else 3


async def scenario_ingest(run: Run, receiver: Sink) -> None:
    seconds = 5.0 if run.quick else 10.0
    rounds = run.rounds
    references, ours = await ingest_bench.measure(32, seconds, rounds)
    base, mine = statistics.median(references), statistics.median(ours)
    run.capacity = mine
    ratio = mine / base
    run.figures.append(
        Figure(
            "ingest", "events committed/s (serve --no-worker, one event per POST)", mine, base,
            "POSTs/s to a trivial ASGI app (202) under the same uvicorn settings", ratio,
            "≥ 0.5", ratio >= 0.5, "/s",
            f"32 concurrent keep-alive clients, {seconds:g} s, median of {rounds} (pushgate"
            f" {_rates(ours)}; reference {_rates(references)})",
        )
    )  # fmt: skip


async def scenario_latency(run: Run, _receiver: Sink) -> None:
    capacity = run.capacity
    if capacity is None:
        await scenario_ingest(run, _receiver)
        capacity = run.capacity
    assert capacity is not None
    rate = max(capacity * 0.2, 1.0)
    seconds = 10.0 if run.quick else 30.0
    with sink(arrivals=True) as timed:
        async with pushgate_serve() as api, aiohttp.ClientSession() as session:
            body = {"name": "sink", "on": True, "config": {"url": timed.url}}
            async with session.post(
                f"{api.url}/api/v2/integrations/webhook", json=body,
                headers={"Authorization": TOKEN},
            ) as answer:  # fmt: skip
                assert answer.status == 201, await answer.text()
            await isolation_bench.load(session, api.url, "warm", rate, 2.0)
            sent = await isolation_bench.load(session, api.url, "timed", rate, seconds)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                arrived = timed.arrived()
                if all(e in arrived for e in sent):
                    break
                await asyncio.sleep(0.2)
    missing = [e for e in sent if e not in arrived]
    if missing:
        raise RuntimeError(f"{len(missing)} of {len(sent)} events never arrived")
    latencies = sorted((arrived[e] - t) * 1000 for e, t in sent.items())
    p50 = isolation_bench.percentile(latencies, 0.5)
    p99 = isolation_bench.percentile(latencies, 0.99)
    params = f"{rate:.0f} single-event POSTs/s (20 % of {capacity:.0f}), {seconds:g} s"
    run.figures.append(
        Figure("latency", "p50 POST → arrival (serve, worker in process)", p50, None, "", None,
               "≤ 5 ms", p50 <= 5, "ms", params)
    )  # fmt: skip
    run.figures.append(
        Figure("latency", "p99 POST → arrival", p99, None, "", None, "≤ 25 ms", p99 <= 25,
               "ms", params)
    )  # fmt: skip


async def _drain_figure(
    run: Run,
    scenario: str,
    what: str,
    configurations: list[tuple[str, dict[str, Any]]],
    events: int,
    target: float,
    *,
    overrides: dict[str, str] | None = None,
    configuration_concurrency: int | None = None,
) -> None:
    # Rounds alternate the reference and pushgate, each on a fresh backlog: the machine's
    # speed drifts within a run, and one short round of either can land on a slow moment.
    references: list[float] = []
    rates: list[float] = []
    peaks: list[int] = []
    for _ in range(run.rounds):
        with tempfile.TemporaryDirectory(prefix="pushgate-bench-") as tmp:
            backlog = await prepare(
                Path(tmp) / "data", configurations, events, endpoint_overrides=overrides
            )
            references.append(await replay(backlog.requests, concurrency=CONCURRENCY))
            rate, peak = await drain_with_worker(
                backlog,
                concurrency=CONCURRENCY,
                configuration_concurrency=configuration_concurrency,
            )
        rates.append(rate)
        peaks.append(peak)
    reference, ours = statistics.median(references), statistics.median(rates)
    ratio = ours / reference
    run.figures.append(
        Figure(
            scenario, what, ours, reference,
            "a bare aiohttp client sending the same requests at the same concurrency", ratio,
            f"≥ {target}", ratio >= target, "/s",
            f"{backlog.deliveries:,} deliveries, concurrency {CONCURRENCY}, one `pushgate worker`"
            f" on SQLite, median of {run.rounds} (pushgate {_rates(rates)}; reference"
            f" {_rates(references)}); worker peak RSS {max(peaks) / 2**20:.0f} MiB",
        )
    )  # fmt: skip


def _rates(rates: list[float]) -> str:
    return " / ".join(f"{rate:,.0f}" for rate in rates)


async def scenario_drain(run: Run, receiver: Sink) -> None:
    await _drain_figure(
        run, "drain", "deliveries/s, one webhook configuration",
        [("webhook", {"url": receiver.url})], run.size(50_000, 10_000), 0.6,
        configuration_concurrency=CONCURRENCY,  # one configuration may use every slot
    )  # fmt: skip


async def scenario_fanout(run: Run, receiver: Sink) -> None:
    configurations = [("webhook", {"url": f"{receiver.url}/{i}"}) for i in range(100)]
    await _drain_figure(
        run, "fanout", "deliveries/s, each event to 100 webhook configurations",
        configurations, run.size(1000, 200), 0.5,
    )  # fmt: skip


async def scenario_mixed(run: Run, receiver: Sink) -> None:
    base = receiver.base
    configurations: list[tuple[str, dict[str, Any]]] = [
        *(("datadog", {"apiKey": f"dd-api-key-{i:04d}-abcdef"}) for i in range(3)),
        *(("splunk", {"base-url": base, "token": f"splunk-token-{i:04d}"}) for i in range(2)),
        *(("msteams", {"url": f"{base}/teams/webhook-{i}"}) for i in range(2)),
        *(("webhook", {"url": f"{base}/hook/{i}"}) for i in range(3)),
    ]
    await _drain_figure(
        run, "mixed", "deliveries/s, 10 configurations: Datadog, Splunk, Teams, webhook",
        configurations, run.size(3000, 600), 0.4, overrides={"datadog": base},
    )  # fmt: skip


async def scenario_backlog(run: Run, receiver: Sink) -> None:
    big, small = run.size(1_000_000, 100_000), 10_000
    measured = run.size(30_000, 10_000)
    configurations = [("webhook", {"url": receiver.url})]
    rates: dict[int, list[float]] = {small: [], big: []}
    peaks: list[int] = []
    with tempfile.TemporaryDirectory(prefix="pushgate-bench-") as tmp:
        # The big backlog is prepared once (about a minute) and each round drains its next
        # deliveries, which leaves it as big as it was to within a few per cent; the small
        # one is prepared again for each round.
        large = await prepare(Path(tmp) / "big", configurations, big, render=False)
        for round_ in range(run.rounds):
            small_dir = Path(tmp) / f"small-{round_}"
            for backlog in (await prepare(small_dir, configurations, small, render=False), large):
                rate, peak = await drain_with_worker(
                    backlog, concurrency=CONCURRENCY, configuration_concurrency=CONCURRENCY,
                    until=min(measured, backlog.deliveries),
                )  # fmt: skip
                rates[backlog.deliveries].append(rate)
                peaks.append(peak)
            shutil.rmtree(small_dir)
    ours, reference = statistics.median(rates[big]), statistics.median(rates[small])
    ratio = ours / reference
    run.figures.append(
        Figure(
            "backlog", f"drain rate with {big:,} pending", ours, reference,
            f"drain rate with {small:,} pending", ratio, "≥ 0.8", ratio >= 0.8, "/s",
            f"the next {measured:,} deliveries of each backlog, one webhook configuration,"
            f" median of {run.rounds} ({big:,}: {_rates(rates[big])}; {small:,}:"
            f" {_rates(rates[small])})",
        )
    )  # fmt: skip
    peak = max(peaks)
    run.figures.append(
        Figure("backlog", "worker peak RSS", peak / 2**20, None, "", None, "≤ 250 MB",
               peak / 2**20 <= 250, "MiB", f"{big:,} pending")
    )  # fmt: skip


async def scenario_isolation(run: Run, _receiver: Sink) -> None:
    # 4 alternating pairs of 15 s, pooled: the p99 of 3,000 latencies a side (with 2 pairs,
    # the ratio of the same code went 0.85-1.45 between runs on this machine)
    seconds, pairs = (5.0, 1) if run.quick else (15.0, 4)
    alone, beside = await isolation_bench.measure(rate=50.0, seconds=seconds, rounds=pairs)
    p99_alone = isolation_bench.percentile(alone, 0.99)
    p99_beside = isolation_bench.percentile(beside, 0.99)
    ratio = p99_beside / p99_alone
    run.figures.append(
        Figure(
            "isolation", "p99 latency beside a configuration whose receiver hangs (ms)",
            p99_beside, p99_alone, "p99 latency alone (ms)", ratio, "≤ 1.2", ratio <= 1.2,
            "ms", f"50 single-event POSTs/s, serve on SQLite, {pairs} alternating pairs of"
            f" {seconds:g} s pooled; p50 {isolation_bench.percentile(beside, 0.5):.1f} beside, "
            f"{isolation_bench.percentile(alone, 0.5):.1f} alone",
        )
    )  # fmt: skip


async def scenario_postgresql(run: Run, receiver: Sink) -> None:
    deliveries = run.size(20_000, 5_000)
    rounds = run.rounds
    rates: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(rounds):
        for workers in (1, 2):
            with tempfile.TemporaryDirectory() as tmp:
                seconds = await scale_bench.drain(
                    scale_bench.DEFAULT_URL, receiver.url, workers, deliveries, CONCURRENCY,
                    Path(tmp),
                )  # fmt: skip
            rates[workers].append(deliveries / seconds)
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    ratio = two / one
    run.figures.append(
        Figure(
            "postgresql", "deliveries/s with 2 `pushgate worker` processes", two, one,
            "deliveries/s with 1", ratio, "≥ 1.3", ratio >= 1.3, "/s",
            f"{deliveries:,} deliveries, one PostgreSQL on the same {cpu_count()} cores as the"
            f" workers and the sink, median of {rounds}",
        )
    )  # fmt: skip


async def scenario_celery(run: Run, receiver: Sink) -> None:
    # Rounds as in `_drain_figure`: one round of either can land on a slow moment.
    deliveries = run.size(20_000, 3_000)
    rates: list[float] = []
    references: list[float] = []
    for _ in range(run.rounds):
        with tempfile.TemporaryDirectory(prefix="pushgate-bench-") as tmp:
            backlog = await prepare(
                Path(tmp) / "data", [("webhook", {"url": receiver.url})], deliveries, render=True
            )
            rate, _ = await drain_with_worker(
                backlog, concurrency=CONCURRENCY, configuration_concurrency=CONCURRENCY
            )
            rates.append(rate)
            references.append(await celery_reference.drain(backlog.requests))
    ours, theirs = statistics.median(rates), statistics.median(references)
    ratio = ours / theirs
    run.figures.append(
        Figure(
            "celery", "pushgate drain, deliveries/s", ours, theirs,
            "Celery 5 + requests (prefork, 2 processes, Redis broker)", ratio, "≥ 10",
            ratio >= 10, "/s",
            f"{deliveries:,} webhook deliveries, the same sink, median of {run.rounds}"
            f" (pushgate {_rates(rates)}; Celery {_rates(references)})",
        )
    )  # fmt: skip


SCENARIOS: dict[str, Callable[[Run, Sink], Awaitable[None]]] = {
    "ingest": scenario_ingest,
    "latency": scenario_latency,
    "drain": scenario_drain,
    "fanout": scenario_fanout,
    "mixed": scenario_mixed,
    "backlog": scenario_backlog,
    "isolation": scenario_isolation,
    "postgresql": scenario_postgresql,
    "celery": scenario_celery,
}


def machine() -> list[str]:
    """What the figures were measured on."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    memory = next(
        (
            int(line.split()[1]) // 1024 // 1024
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    nginx = "absent"
    if NGINX:
        found = subprocess.run([NGINX, "-v"], capture_output=True, text=True, check=False)
        nginx = found.stderr.strip().removeprefix("nginx version: ")
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("pushgate", "aiohttp", "SQLAlchemy", "uvicorn", "fastapi", "asyncpg")
    )
    return [
        f"- Machine: {cpu_count()} cores ({model}), {memory} GiB, {platform.system()} "
        f"{platform.release()}",
        f"- Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, sink {nginx}",
        f"- {versions}",
    ]


def report(run: Run, started: datetime, seconds: float) -> str:
    """The measured part of docs/benchmarks.md."""
    lines = [
        BEGIN,
        f"## Latest run: {started:%Y-%m-%d %H:%M} UTC ({'quick' if run.quick else 'full'}, "
        f"{seconds / 60:.0f} min, `bench/run`)",
        "",
        *machine(),
        "",
        "| scenario | figure | pushgate | reference | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in run.figures:
        reference = f"{f.reference:,.1f} ({f.reference_what})" if f.reference is not None else "—"
        ratio = f"{f.ratio:.2f}" if f.ratio is not None else "—"
        lines.append(
            f"| {f.scenario} | {f.what} | {f.ours:,.1f} {f.unit} | {reference} | {ratio} | "
            f"{f.target} | {'yes' if f.met else '**no**'} |"
        )
    lines += ["", "Parameters:", ""]
    # Two figures of one scenario (p50 and p99) share its parameters: list them once.
    lines += [
        f"- {line}" for line in dict.fromkeys(f"{f.scenario}: {f.parameters}" for f in run.figures)
    ]
    if run.failures:
        lines += ["", "Not measured:", ""] + [f"- {failure}" for failure in run.failures]
    lines.append(END)
    return "\n".join(lines)


def write(section: str) -> None:
    text = DOC.read_text()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + section + tail
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    DOC.write_text(text)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a look, not a record")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--no-write", action="store_true", help="leave docs/benchmarks.md alone")
    args = parser.parse_args()
    configure("warning")
    names = [n for n in args.only.split(",") if n] or list(SCENARIOS)
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    run = Run(quick=args.quick)
    started, clock = datetime.now(UTC), time.perf_counter()
    with sink() as receiver:
        print(f"sink: {receiver.kind}", flush=True)
        for name in names:
            print(f"== {name}", flush=True)
            before = len(run.figures)
            try:
                await SCENARIOS[name](run, receiver)
            except Exception as error:  # one scenario failing does not hide the others
                traceback.print_exc()
                run.failures.append(f"{name}: {error!r}")
                continue
            for f in run.figures[before:]:
                reference = f"   ref {f.reference:,.1f}" if f.reference is not None else ""
                ratio = f"   ratio {f.ratio:.2f}" if f.ratio is not None else ""
                print(
                    f"   {f.what}: {f.ours:,.1f} {f.unit}{reference}{ratio}   target {f.target}"
                    f"   {'ok' if f.met else 'MISSED'}",
                    flush=True,
                )
    section = report(run, started, time.perf_counter() - clock)
    if not args.no_write:
        write(section)
    print(section)
    return 1 if run.failures else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(asyncio.run(main()))
