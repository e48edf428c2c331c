"""Lantern under a path prefix behind nginx, configured with the snippet from docs/DEPLOY.md as written.

Behind a proxy Lantern runs in shared mode (LANTERN_REQUIRE_LOGIN=1), as the doc says: without it, it refuses
whatever comes through the proxy (test_without_login_the_proxy_is_refused).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, AppProcess
from tests.e2e.nginx_conf import NginxProcess, doc_blocks, wrap

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
PREFIX = "/lantern"
PASSWORD = "lantern keeper phrase"


class Nginx(NginxProcess):
    """nginx around the doc's two blocks, in front of one app."""

    def __init__(self, workdir: Path, upstream_port: int) -> None:
        assert NGINX is not None
        super().__init__(NGINX, workdir, lambda path, port: nginx_conf(path, port, upstream_port))


@pytest.fixture
def proxied_local(tmp_path: Path) -> Iterator[tuple[AppProcess, Nginx]]:
    """Lantern with LANTERN_ROOT_PATH=/lantern and nginx in front of it, but login left off (the footgun)."""
    yield from start(tmp_path, {})


@pytest.fixture
def proxied_shared(tmp_path: Path) -> Iterator[tuple[AppProcess, Nginx]]:
    """The same in shared mode, as on a team host: login required, one account `ada`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NICEGUI_"))}
    env["LANTERN_DATA_DIR"] = str(tmp_path / "proc-data")
    added = subprocess.run([sys.executable, "-m", "app", "users", "add", "ada", "--password-stdin"], cwd=ROOT,
                           env=env, input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    yield from start(tmp_path, {"LANTERN_REQUIRE_LOGIN": "1"})


def start(tmp_path: Path, extra_env: dict[str, str]) -> Iterator[tuple[AppProcess, Nginx]]:
    """Start the app, then nginx; stop both, by pid."""
    if NGINX is None:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    app = AppProcess(tmp_path / "proc-data", {"LANTERN_ROOT_PATH": PREFIX,
                                              "LANTERN_DEFAULT_MODEL": "scripted/hello", **extra_env})
    try:
        app.wait_ready()
        proxy = Nginx(tmp_path / "nginx", app.port)
        try:
            yield app, proxy
        finally:
            proxy.stop()
    finally:
        app.stop()


async def test_chat_page_works_under_the_prefix(proxied_shared: tuple[AppProcess, Nginx], page: Any) -> None:
    _, proxy = proxied_shared
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    await page.goto(f"{proxy.url}{PREFIX}/")
    await log_in(page)
    await page.get_by_text("Ask anything").wait_for(timeout=20_000)
    box = page.get_by_placeholder("Message Lantern…")
    await box.fill("Hello through the proxy")
    await box.press("Enter")  # goes over the websocket, through nginx's upgrade
    await page.get_by_text(re.compile(r"scripted/hello · \d+ in")).wait_for(timeout=20_000)
    assert "I am a scripted model." in await page.locator(".lantern-md").last.inner_text()
    assert re.search(rf"^{re.escape(proxy.url + PREFIX)}/chat/[\w-]+$", page.url), page.url
    # Our own stylesheets are loaded from under the prefix.
    sheets = await page.evaluate("() => [...document.styleSheets].map(s => s.href).filter(Boolean)")
    assert f"{proxy.url}{PREFIX}/static/lantern.css" in sheets
    assert f"{proxy.url}{PREFIX}/lantern/highlight.css" in sheets
    # Navigation links stay under the prefix.
    await page.get_by_role("link", name="History").click()
    await page.get_by_text("Hello through the proxy").first.wait_for()
    assert page.url == f"{proxy.url}{PREFIX}/history"
    assert not failed, f"requests failed behind the proxy: {failed}"


async def test_login_under_the_prefix(proxied_shared: tuple[AppProcess, Nginx], page: Any) -> None:
    _, proxy = proxied_shared
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    await page.goto(f"{proxy.url}{PREFIX}/history")
    assert page.url.startswith(f"{proxy.url}{PREFIX}/login?next=")
    await log_in(page)
    await page.wait_for_url(f"{proxy.url}{PREFIX}/history", timeout=20_000)  # back where the person was going
    session = {c["name"]: c for c in await page.context.cookies()}["lantern_session"]
    assert session["path"] == PREFIX
    await page.get_by_role("link", name="Chat").first.click()
    composer = page.get_by_placeholder("Message Lantern…")
    await composer.fill("Hello from the intranet")
    await composer.press("Enter")
    await page.get_by_text("Here is a list:").wait_for(timeout=20_000)
    assert not failed, f"requests failed behind the proxy: {failed}"


def test_sse_arrives_event_by_event(proxied_shared: tuple[AppProcess, Nginx]) -> None:
    """The `slow` script takes ≥ 8 s (400 chunks, 20 ms apart): buffered, nothing would arrive before its end."""
    _, proxy = proxied_shared
    body = {"messages": [{"role": "user", "content": "Talk for a while"}], "model": "scripted/slow"}
    started = time.monotonic()
    arrivals: list[float] = []
    with httpx.stream("POST", f"{proxy.url}{PREFIX}/api/chat/stream", json=body, auth=("ada", PASSWORD),
                      timeout=15) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line == "event: text.delta":
                arrivals.append(time.monotonic() - started)
            if len(arrivals) >= 40:
                break
    assert len(arrivals) >= 40
    assert arrivals[0] < 4, f"the first event took {arrivals[0]:.1f} s"
    assert arrivals[-1] < 6, f"40 events took {arrivals[-1]:.1f} s: the proxy held them back"
    assert arrivals[-1] - arrivals[0] > 0.2, "the events arrived in one lump"


def test_without_login_the_proxy_is_refused(proxied_local: tuple[AppProcess, Nginx]) -> None:
    """Bound to loopback with login off, Lantern would take everyone behind nginx for its one local user."""
    app, proxy = proxied_local
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        page = client.get(f"{PREFIX}/", headers={"Accept": "text/html"})
        assert page.status_code == 403 and "LANTERN_REQUIRE_LOGIN=1" in page.text
        api = client.get(f"{PREFIX}/api/conversations")
        assert api.status_code == 403 and "LANTERN_REQUIRE_LOGIN=1" in api.json()["error"]["message"]
        assert client.get(f"{PREFIX}/health").status_code == 200  # the probe still answers
    assert httpx.get(f"{app.url}/api/conversations", timeout=10).status_code == 200  # on the machine itself: served


async def log_in(page: Any) -> None:
    """Fill in the login page the browser was sent to."""
    await page.get_by_label("Name").fill("ada")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_label("Password").press("Enter")


def nginx_conf(workdir: Path, listen_port: int, upstream_port: int) -> str:
    """A complete nginx.conf around the two blocks in docs/DEPLOY.md, pointed at the test's app."""
    http_block, location_block = doc_blocks("nginx")
    assert "server 127.0.0.1:8080;" in http_block, "the documented upstream changed: update this test"
    http_block = http_block.replace("server 127.0.0.1:8080;", f"server 127.0.0.1:{upstream_port};")
    return wrap(workdir, listen_port, http_block, location_block)
