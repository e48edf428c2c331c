"""Item 7: another site's page (another port on the same host counts) cannot change state with the browser's
cookie, and cannot plant a login ticket in a victim's browser."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.conftest import AppProcess
from tests.security.conftest import ADMIN_PASSWORD, MEMBER_PASSWORD, SharedApp

SLOW_DUET = {"kind": "duet", "topic": "Tabs or spaces", "turns": 4, "agents": [
    {"name": "Ann", "model": "scripted/slow", "system_prompt": "Tabs"},
    {"name": "Ben", "model": "scripted/slow", "system_prompt": "Spaces"}]}


def start_slow_run(client: httpx.Client, origin: str) -> str:
    """A duet that runs for a while, started from this site's own page."""
    created = client.post("/api/runs", json=SLOW_DUET, headers={"Origin": origin})
    assert created.status_code == 201, created.text
    return str(created.json()["run_id"])


def status(client: httpx.Client, run_id: str) -> str:
    """The run's status."""
    return str(client.get(f"/api/runs/{run_id}").json()["status"])


def test_a_cross_site_post_with_the_cookie_is_refused(shared_app: SharedApp) -> None:
    ada = shared_app.login("ada")
    run_id = start_slow_run(ada, shared_app.url)
    other_port = shared_app.url.rsplit(":", 1)[0] + ":1"  # another port on the same host is "same-site"
    refused = ada.post(f"/api/runs/{run_id}/stop", headers={"Origin": other_port})
    assert refused.status_code == 403  # before the fix: 200, the run stopped
    error = refused.json()["error"]
    assert error["type"] == "forbidden" and "LANTERN_CORS_ORIGINS" in error["message"]
    no_origin = ada.post(f"/api/runs/{run_id}/stop", headers={"Sec-Fetch-Site": "same-site"})
    assert no_origin.status_code == 403
    assert status(ada, run_id) == "running"
    assert ada.post(f"/api/runs/{run_id}/stop", headers={"Origin": shared_app.url}).status_code == 200


def test_scripts_with_a_token_need_no_origin(shared_app: SharedApp) -> None:
    script = httpx.Client(base_url=shared_app.url, headers={"Authorization": f"Bearer {shared_app.token('ada')}"})
    run_id = start_slow_run(script, shared_app.url)
    assert script.post(f"/api/runs/{run_id}/stop").status_code == 200


def test_on_a_laptop_too_another_site_cannot_stop_a_run(app_process: AppProcess) -> None:
    local = httpx.Client(base_url=app_process.url, timeout=10)
    run_id = start_slow_run(local, app_process.url)
    assert local.post(f"/api/runs/{run_id}/stop", headers={"Origin": "https://evil.example"}).status_code == 403
    assert local.post(f"/api/runs/{run_id}/stop").status_code == 200  # curl sends no Origin


@contextmanager
def attacker_site(html: str) -> Iterator[str]:
    """A page on another port of 127.0.0.1 (same site, other origin), serving `html`."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


async def log_in_and_keep_the_ticket(page: Any, url: str, name: str, password: str) -> str:
    """Log in on the real login page but stop before the ticket is used: the attacker keeps it."""
    tickets: list[str] = []

    async def capture(route: Any) -> None:
        tickets.append(route.request.url)
        await route.abort()

    await page.route("**/login/complete*", capture)
    await page.goto(url + "/login")
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    for _ in range(100):
        if tickets:
            return tickets[0]
        await asyncio.sleep(0.1)
    raise AssertionError("the login page never handed out a ticket")


@pytest.mark.e2e
async def test_a_planted_login_ticket_does_not_log_the_victim_in(shared_app: SharedApp, page: Any) -> None:
    ticket_url = await log_in_and_keep_the_ticket(page, shared_app.url, "bob", MEMBER_PASSWORD)
    victim = await page.context.browser.new_context()
    tab = await victim.new_page()
    with attacker_site(f'<script>location.href = "{ticket_url}";</script>') as evil:
        await tab.goto(evil)
        await tab.wait_for_url(f"{shared_app.url}/**")
        await tab.get_by_role("button", name="Log in").wait_for()  # the victim is asked to log in
    cookies = {c["name"] for c in await victim.cookies()}
    assert "lantern_session" not in cookies  # before the fix: the victim was now logged in as bob
    await victim.close()


@pytest.mark.e2e
async def test_a_form_on_another_port_cannot_stop_the_victims_run(shared_app: SharedApp, page: Any) -> None:
    ada = shared_app.login("ada")
    run_id = start_slow_run(ada, shared_app.url)
    host = shared_app.url.removeprefix("http://").split(":")[0]
    await page.context.add_cookies([{"name": "lantern_session", "value": ada.cookies["lantern_session"],
                                     "domain": host, "path": "/"}])
    form = (f'<form method="post" action="{shared_app.url}/api/runs/{run_id}/stop"></form>'
            "<script>document.forms[0].submit();</script>")
    with attacker_site(form) as evil:
        async with page.expect_response(f"**/api/runs/{run_id}/stop") as answer:
            await page.goto(evil)
        assert (await answer.value).status == 403  # before the fix: 200
    assert status(ada, run_id) == "running"


@pytest.mark.e2e
async def test_the_real_login_still_completes(shared_app: SharedApp, page: Any) -> None:
    await page.goto(shared_app.url + "/settings")
    await page.get_by_label("Name").fill("ada")
    await page.get_by_label("Password").fill(ADMIN_PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.get_by_text("ada · admin").wait_for(timeout=20_000)
