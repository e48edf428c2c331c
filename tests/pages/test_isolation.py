"""Two users on one shared host: neither can see, stream, stop, change or export the other's items."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
from nicegui import core
from nicegui.testing import User

from services.accounts.passwords import hash_password
from services.accounts.service import digest
from storage import auth_store
from storage import users as user_repo
from storage.engine import Database
from tests.api.test_runs_api import duet_body
from tests.pages.test_login_page import log_in

BRIEF = {"brand": "Lumen", "product": "Solar lantern", "audience": "campers", "goal": "pre-orders"}


@pytest.fixture
def two_users(lantern_env: Path, monkeypatch: pytest.MonkeyPatch, user: User) -> dict[str, dict[str, str]]:
    """Users `ann` and `ben`, each with an API token (built before the app via the shared-mode env)."""
    db = Database(f"sqlite:///{lantern_env / 'lantern.db'}")
    db.open()
    headers: dict[str, dict[str, str]] = {}
    for name in ("ann", "ben"):
        account = db.session_call(user_repo.add_user, name=name, password_hash=hash_password(f"{name} long password"))
        secret = "lt_" + secrets.token_urlsafe(32)
        db.session_call(auth_store.add_token, user_id=account.id, name="test", token_hash=digest(secret),
                        prefix=secret[:8])
        headers[name] = {"Authorization": f"Bearer {secret}"}
    db.close()
    return headers


@pytest.fixture(autouse=True)
def shared(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shared mode, with a generous run limit (this test is about isolation, not rate limits)."""
    monkeypatch.setenv("LANTERN_REQUIRE_LOGIN", "1")
    monkeypatch.setenv("LANTERN_RUNS_PER_MINUTE", "100")


def client(headers: dict[str, str]) -> httpx.AsyncClient:
    """A script authenticated with one user's token."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(core.app), base_url="http://test", headers=headers)


async def bens_items(ben: httpx.AsyncClient) -> dict[str, Any]:
    """One of each kind of item, owned by ben."""
    chat = (await ben.post("/api/chat", json={"messages": [{"role": "user", "content": "Ben's secret plan"}],
                                              "model": "scripted/hello"})).json()
    duet = (await ben.post("/api/runs", json=duet_body(turns=2))).json()
    await ben.get(f"/api/runs/{duet['run_id']}/events")  # let it finish
    studio = (await ben.post("/api/deliverables/generate", json={
        "module": "social_calendar", "brief": BRIEF, "model": "scripted/echo"})).json()
    studio_run = (await ben.get("/api/runs", params={"kind": "deliverables"})).json()["items"][0]["id"]
    return {"conversation": chat["conversation_id"], "chat_run": chat["run_id"], "duet": duet["run_id"],
            "deliverable": studio["deliverables"][0]["id"], "studio_run": studio_run}


async def test_every_route_kind_answers_404_for_someone_elses_item(two_users: dict[str, dict[str, str]]) -> None:
    async with client(two_users["ben"]) as ben, client(two_users["ann"]) as ann:
        items = await bens_items(ben)
        c, d, r = items["conversation"], items["deliverable"], items["duet"]
        attempts = [
            ("GET", f"/api/conversations/{c}", None),
            ("GET", f"/api/conversations/{c}/export?format=md", None),
            ("POST", "/api/chat", {"messages": [{"role": "user", "content": "hi"}], "conversation_id": c,
                                   "model": "scripted/hello"}),
            ("POST", "/api/chat/stream", {"messages": [{"role": "user", "content": "hi"}], "conversation_id": c,
                                          "model": "scripted/hello"}),
            ("DELETE", f"/api/conversations/{c}", None),
            *[(m, f"/api/runs/{run}{suffix}", body) for run in (items["chat_run"], r, items["studio_run"])
              for m, suffix, body in [("GET", "", None), ("GET", "/events", None), ("POST", "/stop", None),
                                      ("GET", "/export?format=json", None)]],
            ("PATCH", f"/api/runs/{r}/agents/0", {"temperature": 1.0}),
            ("POST", "/api/runs", {**duet_body(), "continue_from": r}),
            ("GET", f"/api/deliverables/{d}", None),
            ("PATCH", f"/api/deliverables/{d}", {"content_markdown": "Ann was here"}),
            ("POST", f"/api/deliverables/{d}/approve", None),
            ("GET", f"/api/deliverables/{d}/export?format=md", None),
        ]
        for method, url, body in attempts:
            response = await ann.request(method, url, json=body)
            assert response.status_code == 404, f"{method} {url} → {response.status_code} for another user"
            assert "Ben" not in response.text and "secret" not in response.text
        assert (await ann.get("/api/conversations")).json()["total"] == 0
        assert (await ann.get("/api/conversations", params={"q": "secret"})).json()["total"] == 0
        assert (await ann.get("/api/runs")).json()["items"] == []
        # ...and ben's items are untouched by all of that
        mine = (await ben.get(f"/api/conversations/{c}")).json()
        assert "Ben's secret plan" in str(mine)
        assert (await ben.get(f"/api/deliverables/{d}")).json()["status"] == "draft"
        assert (await ben.get(f"/api/runs/{r}")).status_code == 200


async def test_pages_do_not_show_someone_elses_items(two_users: dict[str, dict[str, str]], user: User) -> None:
    async with client(two_users["ben"]) as ben:
        items = await bens_items(ben)
    await log_in(user, "ann", "ann long password")
    await user.open(f"/chat/{items['conversation']}")
    await user.should_see("This conversation does not exist")
    await user.should_not_see("Ben's secret plan")
    await user.open(f"/duet/{items['duet']}")
    await user.should_see("This duet does not exist.")
    await user.open(f"/studio/{items['studio_run']}")
    await user.should_see(marker="not-found")
    await user.open("/history")
    await user.should_not_see("Ben's secret plan")


async def test_runs_are_rate_limited_per_user(two_users: dict[str, dict[str, str]],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    body = {"messages": [{"role": "user", "content": "hello"}], "model": "scripted/hello"}
    async with client(two_users["ann"]) as ann, client(two_users["ben"]) as ben:
        for _ in range(100):  # the limit set by the fixture
            assert (await ann.post("/api/chat", json=body)).status_code == 200
        refused = await ann.post("/api/chat", json=body)
        assert refused.status_code == 429 and refused.json()["error"]["type"] == "rate_limited"
        assert 0 < int(refused.headers["retry-after"]) <= 60
        assert (await ann.get("/api/conversations")).json()["total"] == 100  # nothing half-written
        assert (await ann.post("/api/runs", json=duet_body())).status_code == 429  # every kind of run counts
        assert (await ben.post("/api/chat", json=body)).status_code == 200  # per user, not global
