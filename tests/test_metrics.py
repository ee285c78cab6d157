"""Metrics and delivery log lines of real processes: `pushgate serve`, and `pushgate worker
--metrics-port` beside an API node. Each series is scraped over HTTP before and after
deliveries happen, and must be there and move."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import ADMIN_TOKEN, Database, Receiver, flag_event, free_port
from test_scaling import Api, Launch, api, eventually, launch, ready  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
SERIES = (
    "pushgate_deliveries_pending",
    "pushgate_delivery_oldest_pending_seconds",
    "pushgate_delivery_attempt_duration_seconds_count",
    "pushgate_delivery_attempts_total",
    "pushgate_deliveries_given_up_total",
    "pushgate_configurations",
    "pushgate_events_accepted_total",
    "pushgate_http_requests_total",
    "pushgate_http_request_duration_seconds_count",
)
# The parts of a webhook URL that may carry credentials: never in a log line.
PATH_SECRET = "path-credential-0123"
QUERY_SECRET = "query-credential-4567"


async def scrape(session: aiohttp.ClientSession, url: str) -> tuple[Samples, str]:
    """Every sample at `url` by (name, labels), and the text itself."""
    async with session.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, text


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample `name` with exactly these labels (0 when absent)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


async def until(
    check: Callable[[], Awaitable[tuple[Samples, str]]], holds: Callable[[Samples], bool]
) -> Samples:
    """Scrape until `holds` (the backlog gauges are cached for a few seconds)."""
    found: Samples = {}

    async def scraped() -> bool:
        nonlocal found
        found, _ = await check()
        return holds(found)

    await eventually(scraped, within=60)
    return found


async def test_serve_exposes_every_series_and_they_move_with_deliveries(
    launch: Launch,  # noqa: F811
    receivers: Callable[[], Awaitable[Receiver]],
    session: aiohttp.ClientSession,
) -> None:
    ok, refusing, down = await receivers(), await receivers(), await receivers()
    ok.gate = asyncio.Event()  # held in flight until the test opens it
    refusing.default = (400, "bad request", {})  # permanent: given up at once
    down.default = (503, "unavailable", {})  # retryable: the breaker pauses it
    port = free_port()
    node = await launch(
        "serve",
        "serve",
        "--port",
        str(port),
        breaker_threshold="3",
        retry_schedule="600",
        log_level="debug",
    )
    url = f"http://127.0.0.1:{port}"
    await ready(node, url, session)
    node_api = Api(url, session)
    for name, receiver in (("ok", ok), ("refusing", refusing), ("down", down)):
        hook = f"{receiver.url}/{PATH_SECRET}/hook?key={QUERY_SECRET}"
        await node_api.call(
            "POST",
            "/api/v2/integrations/webhook",
            {"name": name, "on": True, "config": {"url": hook}},
        )
    before, text = await scrape(session, url + "/metrics")
    assert "_created" not in text
    assert value(before, "pushgate_configurations", state="healthy") == 3
    assert value(before, "pushgate_deliveries_pending", integration="datadog") == 0  # every one
    assert value(before, "pushgate_delivery_oldest_pending_seconds") == 0

    await node_api.call(
        "POST", "/api/v2/events", {"items": [flag_event(f"e{i}") for i in range(3)]}
    )
    await ok.wait_for(3)

    def backlogged(samples: Samples) -> bool:
        return (
            value(samples, "pushgate_deliveries_pending", integration="webhook") == 6
            and value(samples, "pushgate_configurations", state="paused") >= 1
            and value(samples, "pushgate_delivery_oldest_pending_seconds") >= 1
        )

    during = await until(lambda: scrape(session, url + "/metrics"), backlogged)
    assert value(during, "pushgate_deliveries_given_up_total", integration="webhook") == 3
    assert value(during, "pushgate_events_accepted_total") == 3

    ok.gate.set()

    def delivered(samples: Samples) -> bool:
        return value(samples, "pushgate_deliveries_pending", integration="webhook") == 3

    after = await until(lambda: scrape(session, url + "/metrics"), delivered)
    assert names(after) >= set(SERIES)
    attempts = "pushgate_delivery_attempts_total"
    assert value(after, attempts, integration="webhook", outcome="success") == 3
    assert value(after, attempts, integration="webhook", outcome="failed") == 3
    assert value(after, attempts, integration="webhook", outcome="retry") == 3
    timed = "pushgate_delivery_attempt_duration_seconds_count"
    assert value(after, timed, integration="webhook", outcome="success") == 3
    assert value(after, "pushgate_configurations", state="healthy") == 1
    posted = {"method": "POST", "route": "/api/v2/events", "status": "202"}
    assert value(after, "pushgate_http_requests_total", **posted) == 1
    assert value(after, "pushgate_http_request_duration_seconds_count", **posted) == 1
    assert value(after, "pushgate_delivery_oldest_pending_seconds") > 0  # the paused one's

    lines = node.events()
    succeeded = [e for e in lines if e.get("event") == "delivery.succeeded"]
    assert len(succeeded) == 3
    assert {e["host"] for e in succeeded} == {ok.url.removeprefix("http://")}
    assert all(isinstance(e["duration_ms"], float) for e in succeeded)
    failed = [e for e in lines if e.get("event") == "delivery.failed"]
    assert {e["host"] for e in failed} == {refusing.url.removeprefix("http://")}
    log = node.log.read_text()
    assert PATH_SECRET not in log
    assert QUERY_SECRET not in log
    assert await node.terminate() == 0


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_a_worker_serves_metrics_health_and_readiness_on_its_metrics_port(
    api: Api,  # noqa: F811
    launch: Launch,  # noqa: F811
    receiver: Receiver,
    session: aiohttp.ClientSession,
) -> None:
    worker = await launch("worker", "worker", "--metrics-port", "0")
    using = await worker.logged("database.using")
    assert using["database"].startswith("PostgreSQL postgres@127.0.0.1:5432/test (schema test_")
    listening = await worker.logged("metrics.listening")
    url = f"http://127.0.0.1:{listening['port']}"
    for path in ("/healthz", "/readyz"):
        async with session.get(url + path) as answer:
            assert answer.status == 200
    first, text = await scrape(session, url + "/metrics")
    assert "_created" not in text
    assert value(first, "pushgate_configurations", state="healthy") == 0

    await api.call(
        "POST",
        "/api/v2/integrations/webhook",
        {"name": "hook", "on": True, "config": {"url": receiver.url}},
    )
    await api.call("POST", "/api/v2/events", {"items": [flag_event("e1"), flag_event("e2")]})

    def delivered(samples: Samples) -> bool:
        succeeded = {"integration": "webhook", "outcome": "success"}
        return (
            value(samples, "pushgate_delivery_attempts_total", **succeeded) == 2
            and value(samples, "pushgate_configurations", state="healthy") == 1
        )

    on_worker = await until(lambda: scrape(session, url + "/metrics"), delivered)
    assert value(on_worker, "pushgate_deliveries_pending", integration="webhook") == 0
    assert value(on_worker, "pushgate_delivery_attempt_duration_seconds_count",
                 integration="webhook", outcome="success") == 2  # fmt: skip
    on_api, _ = await scrape(session, api.url + "/metrics")
    assert value(on_api, "pushgate_delivery_attempts_total",
                 integration="webhook", outcome="success") == 0  # fmt: skip
    assert value(on_api, "pushgate_events_accepted_total") == 2
    assert value(on_api, "pushgate_configurations", state="healthy") == 1  # the same database
    assert await worker.terminate() == 0


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_an_unexpected_error_is_one_json_line_with_its_traceback(
    launch: Launch,  # noqa: F811
    session: aiohttp.ClientSession,
    database: Database,
) -> None:
    import sqlite3

    port = free_port()
    node = await launch("serve", "serve", "--no-worker", "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    await ready(node, url, session)
    created = await Api(url, session).call(
        "POST",
        "/api/v2/integrations/webhook",
        {"name": "hook", "on": True, "config": {"url": "https://example.com/hook"}},
    )
    # A row that no longer reads (its tags are not JSON): a bug-like failure, not an outage.
    with sqlite3.connect(database.data_dir / "pushgate.db") as connection:
        connection.execute("UPDATE configurations SET tags = 'not json'")
    async with session.get(
        f"{url}/api/v2/integrations/webhook/{created['_id']}",
        headers={"Authorization": ADMIN_TOKEN},
    ) as answer:
        assert answer.status == 500
        assert (await answer.json())["code"] == "internal_server_error"
    entry = await node.logged("api.unexpected_error")
    assert "Traceback" in entry["exception"]
    assert "JSONDecodeError" in entry["exception"]
    assert await node.terminate() == 0
    errors = [e for e in node.events() if e.get("level") == "error"]
    assert errors == [entry]  # once, and uvicorn said nothing of its own
    assert all(line.startswith("{") for line in node.log.read_text().splitlines())
