"""The alternative a Python user would reach for: Celery 5 + requests, prefork, Redis.

    rate = await drain(requests)     # the same requests pushgate sent, deliveries per second

Celery, its Redis client and requests are not pushgate's dependencies: they go into a venv of
their own (`.bench/celery-venv`, made on first use, from the package registry). One task per
delivery POSTs the request with `requests` (a session per worker process, as a careful user
would keep) and counts it in Redis. The backlog is queued first, then a worker with 2 prefork
processes (one per core) drains it; the clock runs from the worker's start until Redis counts
every delivery.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from pushgate.integrations.base import OutboundRequest

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".bench" / "celery-venv"
PACKAGES = ["celery[redis]>=5.4,<6", "requests>=2.32"]
REDIS = "redis://127.0.0.1:6379/15"
PROCESSES = 2
COUNTER = "pushgate-bench:done"
TASKS = """
import json, os
import redis, requests
from celery import Celery, signals

app = Celery("bench", broker=os.environ["BROKER"])
app.conf.update(worker_prefetch_multiplier=16, task_acks_late=False, task_ignore_result=True,
                worker_hijack_root_logger=False)
session = None
counter = None


@signals.worker_process_init.connect
def _open(**_):
    global session, counter
    session = requests.Session()
    counter = redis.Redis.from_url(os.environ["BROKER"])


@app.task(name="deliver")
def deliver(method, url, headers, body):
    answer = session.request(method, url, headers=headers, data=body.encode(), timeout=10)
    answer.raise_for_status()
    counter.incr(COUNTER)
""".replace("COUNTER", repr(COUNTER))


def _python() -> Path:
    """The benchmark venv's python, made (with Celery in it) when missing."""
    python = VENV / "bin" / "python"
    if not python.exists():
        VENV.parent.mkdir(exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PACKAGES], check=True)
    return python


async def drain(requests: Sequence[OutboundRequest]) -> float:
    """Deliveries per second of Celery + requests sending `requests`."""
    python = _python()
    with tempfile.TemporaryDirectory(prefix="pushgate-celery-") as tmp:
        Path(tmp, "benchtasks.py").write_text(TASKS)
        env = {**os.environ, "BROKER": REDIS, "PYTHONPATH": tmp}
        queue = json.dumps([[r.method, r.url, dict(r.headers), r.body.decode()] for r in requests])
        Path(tmp, "queue.json").write_text(queue)
        enqueue = (
            "import json, redis, benchtasks\n"
            "r = redis.Redis.from_url(benchtasks.os.environ['BROKER'])\n"
            "r.flushdb()\n"
            "items = json.load(open('queue.json'))\n"
            "for item in items: benchtasks.deliver.delay(*item)\n"
        )
        subprocess.run([str(python), "-c", enqueue], cwd=tmp, env=env, check=True)
        worker = await asyncio.create_subprocess_exec(
            str(python), "-m", "celery", "-A", "benchtasks", "worker", "--pool", "prefork",
            "--concurrency", str(PROCESSES), "--loglevel", "WARNING", "--without-gossip",
            "--without-mingle", "--without-heartbeat",
            cwd=tmp, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        started = time.perf_counter()
        watch = (
            "import redis, sys, time\n"
            f"r = redis.Redis.from_url({REDIS!r})\n"
            "while True:\n"
            f"    print(int(r.get({COUNTER!r}) or 0), flush=True)\n"
            "    time.sleep(0.1)\n"
        )
        counter = await asyncio.create_subprocess_exec(
            str(python), "-c", watch, env=env, stdout=asyncio.subprocess.PIPE
        )
        try:
            assert counter.stdout is not None
            async with asyncio.timeout(600):
                while int((await counter.stdout.readline()) or b"0") < len(requests):
                    if worker.returncode is not None:
                        raise RuntimeError("the Celery worker exited")
            return len(requests) / (time.perf_counter() - started)
        finally:
            for process in (worker, counter):
                process.terminate()
                await process.wait()
