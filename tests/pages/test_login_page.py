"""Shared mode as people and scripts meet it: the login page, sessions, tokens, roles, the gate."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from nicegui import app as nicegui_app
from nicegui import core
from nicegui.testing import User
from sqlmodel import select
from starlette.routing import Mount, Route

from app.gate import PUBLIC_PATHS, is_public
from services.accounts.passwords import hash_password
from storage import users as user_repo
from storage.engine import Database
from storage.models import ApiToken

ADMIN_PASSWORD = "correct horse battery"
MEMBER_PASSWORD = "member secret phrase"


@pytest.fixture
def shared(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app is built in shared mode (login required), as on an intranet host."""
    monkeypatch.setenv("LANTERN_REQUIRE_LOGIN", "1")
    monkeypatch.setenv("LANTERN_DEFAULT_MODEL", "scripted/hello")


@pytest.fixture
def accounts(lantern_env: Path, shared: None, user: User) -> Database:
    """An admin `ada` and a member `bob` in the app's database."""
    db = Database(f"sqlite:///{lantern_env / 'lantern.db'}")
    db.open()
    db.session_call(user_repo.add_user, name="ada", password_hash=hash_password(ADMIN_PASSWORD), role="admin")
    db.session_call(user_repo.add_user, name="bob", password_hash=hash_password(MEMBER_PASSWORD))
    yield db
    db.close()


def anonymous() -> httpx.AsyncClient:
    """A client with no cookies and no credentials."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(core.app), base_url="http://test")


async def log_in(user: User, name: str, password: str, path: str = "/") -> None:
    """Open a page, get the login form, fill it in."""
    await user.open(path)
    await user.should_see(marker="login-name")
    user.find(marker="login-name").type(name)
    user.find(marker="login-password").type(password)
    user.find(marker="login-submit").click()
    await user.should_not_see(marker="login-submit", retries=50)  # Argon2 takes a moment, then the page changes


async def test_login_leads_back_to_the_page_asked_for(accounts: Database, user: User) -> None:
    await user.open("/")
    user.find(marker="login-name").type("ada")
    user.find(marker="login-password").type("not the password")
    user.find(marker="login-submit").click()
    await user.should_see("Wrong name or password.", retries=50)
    user.find(marker="login-password").clear()
    await log_in(user, "ada", ADMIN_PASSWORD, path="/settings")
    await user.should_see(marker="account-name")
    await user.should_see("ada · admin")
    response = await user.http_client.get("/api/conversations")  # the session cookie works for the API too
    assert response.status_code == 200


async def test_logout_ends_the_session_everywhere(accounts: Database, user: User) -> None:
    await log_in(user, "bob", MEMBER_PASSWORD)
    await user.should_see("Ask anything")
    cookie = user.http_client.cookies.get("lantern_session")
    assert cookie
    await user.open("/logout")
    await user.should_see(marker="login-name")
    await user.open("/")
    await user.should_see(marker="login-name")  # not the chat
    async with anonymous() as replay:  # the old cookie is dead server-side, not just deleted in this browser
        replay.cookies.set("lantern_session", cookie)
        assert (await replay.get("/api/conversations")).status_code == 401


async def test_wrong_passwords_are_throttled(accounts: Database, user: User) -> None:
    await user.open("/login")
    password = next(iter(user.find(marker="login-password").elements))
    for _ in range(5):
        user.find(marker="login-name").clear().type("ada")
        user.find(marker="login-password").clear().type("wrong guess")
        user.find(marker="login-submit").click()
        for _ in range(100):  # a refused attempt empties the password field
            if not password.value:
                break
            await asyncio.sleep(0.05)
        await user.should_see("Wrong name or password.")
    user.find(marker="login-password").clear().type(ADMIN_PASSWORD)  # even the right one waits now
    user.find(marker="login-submit").click()
    await user.should_see("Too many failed attempts", retries=50)
    async with anonymous() as script:  # and HTTP Basic shares the same throttle
        response = await script.get("/api/conversations", auth=("ada", "wrong guess"))
        assert response.status_code == 429 and int(response.headers["retry-after"]) > 0


async def test_api_token_works_until_revoked(accounts: Database, user: User) -> None:
    await log_in(user, "bob", MEMBER_PASSWORD, path="/settings")
    await user.should_see(marker="tokens-empty")
    user.find(marker="token-name").type("nightly report")
    user.find(marker="token-create").click()
    await user.should_see(marker="token-secret")
    secret = next(iter(user.find(marker="token-secret").elements)).content.strip()
    assert re.fullmatch(r"lt_[\w-]{40,}", secret)
    async with anonymous() as script:
        bearer = {"Authorization": f"Bearer {secret}"}
        assert (await script.get("/api/conversations", headers=bearer)).status_code == 200
        user.find("Done").click()
        user.find(marker="revoke-nightly report").click()
        await user.should_see("revoked")
        response = await script.get("/api/conversations", headers=bearer)
        assert response.status_code == 401 and "revoked" in response.json()["error"]["message"]
    stored = accounts.session_call(lambda session: [t.token_hash for t in session.exec(select(ApiToken))])
    assert stored and secret not in stored  # only a hash is kept


async def test_a_token_made_unrecorded_keeps_its_v1_calls_out_of_history(accounts: Database, user: User) -> None:
    await log_in(user, "bob", MEMBER_PASSWORD, path="/settings")
    user.find(marker="token-name").type("private gateway")
    user.find(marker="token-record").click()  # on by default: this one is made unrecorded
    user.find(marker="token-create").click()
    await user.should_see(marker="token-secret")
    secret = next(iter(user.find(marker="token-secret").elements)).content.strip()
    user.find("Done").click()
    await user.should_see("/v1 calls not recorded")
    bearer = {"Authorization": f"Bearer {secret}"}
    async with anonymous() as script:
        completion = await script.post("/v1/chat/completions", headers={**bearer, "X-Lantern-Record": "on"}, json={
            "model": "scripted/hello", "messages": [{"role": "user", "content": "Keep this between us"}]})
        assert completion.status_code == 200 and completion.json()["choices"][0]["message"]["content"]
        assert "X-Run-Id" not in completion.headers  # the header cannot turn recording back on
        listed = (await script.get("/api/conversations", headers=bearer)).json()
        assert listed["items"] == []
    stored = accounts.session_call(lambda session: [t.record_calls for t in session.exec(select(ApiToken))])
    assert stored == [False]


async def test_admins_manage_users_members_do_not(accounts: Database, user: User) -> None:
    await log_in(user, "ada", ADMIN_PASSWORD, path="/settings")
    await user.should_see(marker="users-section")
    await user.should_see(marker="providers-section")
    user.find(marker="user-add").click()
    user.find(marker="new-user-name").type("cyd")
    user.find(marker="new-user-password").type("short")
    user.find(marker="new-user-add").click()
    await user.should_see("at least 10 characters", retries=50)
    user.find(marker="new-user-password").clear().type("cyd's long password")
    user.find(marker="new-user-add").click()
    await user.should_see(marker="user-cyd", retries=50)
    async with anonymous() as script:
        assert (await script.get("/api/conversations", auth=("cyd", "cyd's long password"))).status_code == 200
    await user.open("/logout")
    await log_in(user, "bob", MEMBER_PASSWORD, path="/settings")
    await user.should_see(marker="tokens-section")
    await user.should_not_see(marker="users-section")
    await user.should_not_see(marker="providers-section")


def all_routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, Route | Mount]]:
    """Every route with its full path, looking inside included routers."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:  # FastAPI keeps include_router()'s routes behind a wrapper
            yield from all_routes(inner.routes, prefix + route.include_context.prefix)
            continue
        assert isinstance(route, Route | Mount), f"unexpected route type {type(route).__name__}"
        yield prefix + route.path, route


async def test_every_route_needs_a_login_except_the_public_few(accounts: Database, user: User) -> None:
    """Enumerates the app's routes, so a route added later cannot slip past the gate."""
    checked: list[str] = []
    async with anonymous() as client:
        for path, route in all_routes(nicegui_app.routes):
            if is_public(path) or is_public(path.rstrip("/") + "/"):
                continue
            url = re.sub(r"\{[^}:]+:path\}", "a/b", re.sub(r"\{[^}:]+\}", "x1", path)) or "/"
            methods = sorted(route.methods or {"GET"}) if isinstance(route, Route) else ["GET"]
            for method in methods:
                if method == "HEAD":
                    continue
                response = await client.request(method, url, json={} if method != "GET" else None)
                refused = response.status_code == 401 or (
                    response.status_code == 303 and response.headers["location"].startswith("/login"))
                assert refused, f"{method} {path} answered {response.status_code} without a login"
                checked.append(f"{method} {path}")
    assert len(checked) >= 25, checked
    for expected in ("GET /", "GET /settings", "GET /api/conversations", "POST /api/chat/stream",
                     "GET /api/runs/{run_id}/events", "POST /api/runs/{run_id}/stop", "GET /api/models"):
        assert expected in checked, f"{expected} was not enumerated"
    assert "/health" in PUBLIC_PATHS and len(PUBLIC_PATHS) <= 6
    async with anonymous() as client:
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/login")).status_code == 200
