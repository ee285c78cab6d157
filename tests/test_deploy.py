"""The shipped deployment files: nginx accepts its configuration and, in front of a real
`pushgate serve`, gets its forwarded headers believed; systemd accepts the service units.

nginx comes from Debian (scripts/test installs it); outside CI a machine without it skips, under
CI=true that fails. `systemd-analyze verify` runs where the machine has it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from conftest import free_port
from integrations.test_splunk import self_signed_certificate
from test_scaling import Launch, launch, ready  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
NGINX_CONF = DEPLOY / "nginx" / "pushgate.conf"
# Where the shipped files expect things, replaced by this test's own.
SHIPPED_CERT = "/etc/ssl/pushgate/fullchain.pem"
SHIPPED_KEY = "/etc/ssl/pushgate/privkey.pem"
SHIPPED_UPSTREAM = "server 127.0.0.1:8080;"
SHIPPED_PUSHGATE = "/opt/pushgate/venv/bin/pushgate"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


@pytest.fixture
def nginx() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None
    )
    if found is None:
        if _in_ci():
            pytest.fail("nginx is missing (scripts/test installs Debian's nginx)", pytrace=False)
        pytest.skip("nginx is not installed (scripts/test installs it)")
    return found


def _nginx_prefix(directory: Path, *, upstream: int, http: int, https: int) -> Path:
    """An nginx prefix directory whose nginx.conf includes the shipped server configuration,
    with only the certificate, the upstream and the ports replaced; returns nginx.conf."""
    cert, key = self_signed_certificate(directory)
    shipped = NGINX_CONF.read_text()
    for old in (SHIPPED_CERT, SHIPPED_KEY, SHIPPED_UPSTREAM):
        assert old in shipped, f"{NGINX_CONF} no longer has {old!r}"
    site = (
        shipped.replace(SHIPPED_CERT, str(cert))
        .replace(SHIPPED_KEY, str(key))
        .replace(SHIPPED_UPSTREAM, f"server 127.0.0.1:{upstream};")
        .replace("listen 80;", f"listen 127.0.0.1:{http};")
        .replace("listen [::]:80;", "")
        .replace("listen 443 ssl http2;", f"listen 127.0.0.1:{https} ssl http2;")
        .replace("listen [::]:443 ssl http2;", "")
    )
    (directory / "pushgate.conf").write_text(site)
    (directory / "logs").mkdir()
    main = directory / "nginx.conf"
    main.write_text(
        f"daemon off;\nmaster_process off;\npid {directory}/nginx.pid;\n"
        f"error_log {directory}/logs/error.log;\n"
        "events {}\n"
        f"http {{\n  access_log {directory}/logs/access.log;\n"
        f"  client_body_temp_path {directory}/body;\n  proxy_temp_path {directory}/proxy;\n"
        f"  include {directory}/pushgate.conf;\n}}\n"
    )
    return main


def test_nginx_accepts_the_shipped_configuration(nginx: str, tmp_path: Path) -> None:
    main = _nginx_prefix(tmp_path, upstream=8080, http=free_port(), https=free_port())
    checked = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(main)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr


@pytest.fixture
def running_nginx(nginx: str, tmp_path: Path) -> Iterator[tuple[Path, int, int]]:
    """nginx with the shipped configuration, proxying to a port chosen here: (conf, port of
    the upstream, https port)."""
    upstream, https = free_port(), free_port()
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    main = _nginx_prefix(prefix, upstream=upstream, http=free_port(), https=https)
    process = subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", str(main)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield main, upstream, https
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("trusted", [True, False])
async def test_behind_the_shipped_nginx_pushgate_believes_only_a_trusted_proxy(
    running_nginx: tuple[Path, int, int],
    launch: Launch,  # noqa: F811
    trusted: bool,
) -> None:
    _, upstream, https = running_nginx
    # Trusted: the default (loopback, where nginx is). Not: --forwarded-allow-ips elsewhere.
    option = [] if trusted else ["--forwarded-allow-ips", "10.9.9.9/32"]
    node = await launch("serve", "serve", "--port", str(upstream), *option, access_log="true")
    async with aiohttp.ClientSession() as session:
        await ready(node, f"http://127.0.0.1:{upstream}", session)
        async with session.get(f"http://127.0.0.1:{upstream}/login") as direct:
            assert direct.status == 200
            assert "secure" not in direct.headers["Set-Cookie"].lower()
        async with asyncio.timeout(30):
            while True:  # nginx may take a moment to listen
                try:
                    async with session.get(
                        f"https://127.0.0.1:{https}/login", ssl=False
                    ) as proxied:
                        assert proxied.status == 200
                        cookie = proxied.headers["Set-Cookie"].lower()
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
        async with session.get(f"https://127.0.0.1:{https}/metrics", ssl=False) as hidden:
            assert hidden.status == 403
    # X-Forwarded-Proto: https is believed from a trusted proxy only.
    assert ("; secure" in cookie) is trusted
    assert await node.terminate() == 0
    requests = [e for e in node.events() if e.get("event") == "http.request"]
    assert {e["client"] for e in requests} == {"127.0.0.1"}


@pytest.mark.parametrize("unit", sorted(p.name for p in (DEPLOY / "systemd").iterdir()))
def test_systemd_accepts_the_shipped_unit(unit: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("this machine has no systemd-analyze")
    text = (DEPLOY / "systemd" / unit).read_text()
    assert SHIPPED_PUSHGATE in text
    # The unit as shipped, but for where pushgate is installed here.
    pushgate = Path(sys.executable).with_name("pushgate")
    local = tmp_path / unit.replace("@.", "@9101.")
    local.write_text(text.replace(SHIPPED_PUSHGATE, str(pushgate)))
    checked = subprocess.run(
        [analyze, "verify", "--man=no", str(local)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stderr
    problems = [
        line
        for line in checked.stderr.splitlines()
        if "pushgate" in line.lower() or "unknown" in line.lower()
    ]
    assert problems == []
