"""The receiving end of the benchmarks: Debian's nginx answering 200, else an aiohttp sink.

    with sink() as s:        # s.url, s.kind ("nginx" or "aiohttp"), s.port
        ...

nginx runs with one worker process and no access log, reads every body and answers 200 `ok`,
so it costs the machine as little as a receiver can. When nginx is not installed
(`apt-get install -y nginx`), `bench/sink.py` (aiohttp) stands in, and `kind` says so: the
benchmarks print it beside every figure.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    {access_log}
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_body_buffer_size 1m;
    client_max_body_size 16m;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    default_type application/json;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        # `return` drains the body from the connection, as a receiver must, then answers.
        # Each vendor path answers what that vendor answers on success.
        location = /api/v1/events {{ return 202 '{{"status":"ok"}}'; }}
        location = /services/collector/event {{ return 200 '{{"text":"Success","code":0}}'; }}
        location /teams/ {{ return 200 "1"; }}
        location / {{ return 200 "ok"; }}
    }}
}}
"""
# When arrivals are wanted: the webhook-id header (the event id) and the time, per request.
ARRIVALS_LOG = "log_format arrivals '$http_webhook_id $msec'; access_log {path} arrivals;"


@dataclass(frozen=True)
class Sink:
    """A running receiver: where to send, and what it is.

    With `arrivals` (nginx only), `arrived()` tells when each event (by its `webhook-id`)
    arrived, in Unix seconds.
    """

    url: str
    kind: str
    port: int
    arrivals: Path | None = None

    @property
    def base(self) -> str:
        """Scheme, host and port, for endpoint overrides and vendor base URLs."""
        return f"http://127.0.0.1:{self.port}"

    def arrived(self) -> dict[str, float]:
        """Event id → arrival time (Unix seconds) of every request that carried one."""
        if self.arrivals is None or not self.arrivals.exists():
            return {}
        found = {}
        for line in self.arrivals.read_text().splitlines():
            event_id, _, when = line.rpartition(" ")
            if event_id and event_id != "-":
                found.setdefault(event_id, float(when))
        return found


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_listening(port: int, within: float = 20.0) -> None:
    """Return once something accepts connections on `port`."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


@contextlib.contextmanager
def sink(
    *, latency_ms: float = 0.0, prefer: str = "nginx", arrivals: bool = False
) -> Iterator[Sink]:
    """Start a receiver in its own process(es); stop it at the end.

    `latency_ms` (an answer that takes time, like a SaaS API) needs the aiohttp sink;
    `arrivals` (the time each event arrived) needs nginx.
    """
    port = free_port()
    use_nginx = prefer == "nginx" and NGINX is not None and not latency_ms
    with tempfile.TemporaryDirectory(prefix="pushgate-sink-") as tmp:
        if use_nginx:
            conf = Path(tmp) / "nginx.conf"
            log = Path(tmp) / "arrivals.log" if arrivals else None
            access_log = ARRIVALS_LOG.format(path=log) if log else "access_log off;"
            conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, access_log=access_log))
            command = [str(NGINX), "-c", str(conf), "-p", tmp, "-e", f"{tmp}/error.log"]
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            kind = "nginx"
        else:
            command = [sys.executable, str(HERE / "sink.py"), str(port), str(latency_ms)]
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            kind = "aiohttp" + (f" (+{latency_ms:g} ms)" if latency_ms else "")
            log = None
            if arrivals:
                raise RuntimeError("arrival times need nginx (apt-get install -y nginx)")
            if prefer == "nginx" and not latency_ms:
                print("nginx is not installed: the aiohttp sink stands in", file=sys.stderr)
        try:
            wait_listening(port)
            yield Sink(f"http://127.0.0.1:{port}/hook", kind, port, log)
        finally:
            process.terminate()
            process.wait(10)
