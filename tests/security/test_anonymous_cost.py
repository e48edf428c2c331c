"""What an anonymous client can make a shared instance do: a redirect or a small refusal, never a page."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from nicegui import __version__ as NICEGUI_VERSION

from tests.security.conftest import SharedApp

SMALL = 1024  # bytes: a refusal, not a page
PAGE = {"Accept": "text/html,application/xhtml+xml"}
SCRIPT = {"Accept": "application/json"}


def test_unknown_nicegui_paths_get_a_small_refusal(shared_app: SharedApp) -> None:
    with httpx.Client(base_url=shared_app.url, timeout=10) as client:
        for i in range(200):
            path = f"/_nicegui/x{i}" if i % 4 else f"/x{i}"  # NiceGUI's namespace, and the app's own
            response = client.get(path, headers=PAGE if i % 2 else SCRIPT)
            assert_small_refusal(response, path)
        for path in (f"/_nicegui/{NICEGUI_VERSION}/x", "/_nicegui/1.0.0/static/vue.js",
                     f"/_nicegui/{NICEGUI_VERSION}/resources/only-a-key", "/_nicegui/auto/static/token/file.txt",
                     "/_nicegui/client/some-client/upload/1", f"/_nicegui/{NICEGUI_VERSION}/static/missing.js",
                     f"/_nicegui/{NICEGUI_VERSION}/libraries/missing", f"/_nicegui/{NICEGUI_VERSION}/esm/k/x.js",
                     "/static/missing.css", "/_nicegui_ws/elsewhere"):
            assert_small_refusal(client.get(path, headers=PAGE), path)
            assert_small_refusal(client.post(path, content=b"{}"), path)


def test_a_thousand_anonymous_requests_cost_little_memory(shared_app: SharedApp) -> None:
    pid = shared_app.proc.proc.pid
    with httpx.Client(base_url=shared_app.url, timeout=10) as client:
        for i in range(100):  # warm up: first-use imports and caches are not what is measured
            client.get(f"/_nicegui/warm{i}", headers=PAGE)
        before = rss_mib(pid)
        for i in range(1000):
            client.get(f"/_nicegui/x{i}", headers=PAGE if i % 2 else SCRIPT)
        after = rss_mib(pid)
    print(f"server RSS: {before:.0f} MiB before, {after:.0f} MiB after 1,000 anonymous requests")
    assert after - before < 20, f"1,000 anonymous requests grew the server from {before:.0f} to {after:.0f} MiB"


def test_the_login_page_still_loads_its_assets_anonymously(shared_app: SharedApp) -> None:
    with httpx.Client(base_url=shared_app.url, timeout=10) as client:
        page = client.get("/login", headers=PAGE)
        assert page.status_code == 200
        assets = sorted({url for url in re.findall(r"""["'](/(?:_nicegui|static|lantern)/[^"'\s]+)["']""", page.text)
                         if not url.endswith("/")})
        assert any("/_nicegui/" in url for url in assets), assets
        for url in assets:
            response = client.get(url)
            assert response.status_code == 200, f"{url} answered {response.status_code} on the login page"
        socket = client.get("/_nicegui_ws/socket.io/", params={"EIO": "4", "transport": "polling"})
        assert socket.status_code == 200, "the login page's socket cannot open"


def assert_small_refusal(response: httpx.Response, path: str) -> None:
    """A login redirect, a 401, or a plain 404/405, in well under a kilobyte: nothing was built for it."""
    assert len(response.content) < SMALL, f"{path}: {len(response.content)} bytes for an anonymous request"
    assert "text/html" not in response.headers.get("content-type", ""), f"{path}: answered with a page"
    if response.status_code == 303:
        assert response.headers["location"].startswith("/login"), path
    else:
        assert response.status_code in (401, 404, 405), f"{path}: {response.status_code}"


def rss_mib(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    kib = int(re.search(r"^VmRSS:\s+(\d+) kB", status, flags=re.M).group(1))  # type: ignore[union-attr]
    return kib / 1024
