"""Item 3: a password change or removal ends that user's tokens and logins at once, also from `lantern users`
while the server runs; tokens may expire and show when they were last used."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import httpx
from sqlmodel import select

from storage.models import ApiToken, utcnow
from tests.security.conftest import SharedApp

PASSWORD = "correct horse battery"


async def test_a_password_change_revokes_api_tokens(lantern: Any) -> None:
    accounts = lantern.accounts
    amy = await accounts.add_user("amy", PASSWORD, "member")
    _, secret = await accounts.create_token(amy.id, "nightly")
    assert await accounts.from_token(secret) is not None
    await accounts.set_password("amy", "a brand new password")
    # Before: the token kept working after the password that was leaked together with it had changed.
    assert await accounts.from_token(secret) is None
    assert all(t.revoked_at is not None for t in await accounts.tokens(amy.id))


async def test_tokens_expire_and_record_their_last_use(lantern: Any) -> None:
    accounts = lantern.accounts
    kim = await accounts.add_user("kim", PASSWORD, "member")
    token, secret = await accounts.create_token(kim.id, "short", days=7)
    assert token.expires_at is not None
    assert (token.expires_at - utcnow().replace(tzinfo=None) if token.expires_at.tzinfo is None
            else token.expires_at - utcnow()) > timedelta(days=6)
    assert await accounts.from_token(secret) is not None
    listed = await accounts.tokens(kim.id)
    assert listed[0].last_used_at is not None
    await lantern.db.call(_expire, token_id=token.id)
    accounts._cache.clear()  # a lookup is cached for at most 30 s, never past the token's expiry
    assert await accounts.from_token(secret) is None


def _expire(session: Any, *, token_id: str) -> None:
    """Move a token's expiry into the past."""
    row = session.exec(select(ApiToken).where(ApiToken.id == token_id)).one()
    row.expires_at = utcnow() - timedelta(seconds=1)
    session.add(row)


def _until(check: Any, seconds: float) -> float:
    """Seconds until `check()` holds, or fail after `seconds`."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if check():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"still not so after {seconds} s")


def test_lantern_users_passwd_while_the_server_runs_ends_logins_and_tokens(shared_app: SharedApp) -> None:
    browser = shared_app.login("bob")
    secret = shared_app.token("bob")
    script = httpx.Client(base_url=shared_app.url, headers={"Authorization": f"Bearer {secret}"}, timeout=10)
    assert browser.get("/api/conversations").status_code == 200  # both cached by the server now
    assert script.get("/api/conversations").status_code == 200
    changed = shared_app.users("passwd", "bob", password="another long password")
    assert changed.returncode == 0, changed.stderr
    assert "API tokens have ended" in changed.stdout
    # Before: the server's 30 s cache kept both working, and the token never stopped.
    waited = _until(lambda: browser.get("/api/conversations").status_code == 401
                    and script.get("/api/conversations").status_code == 401, seconds=5)
    assert waited < 5
    browser.close()
    script.close()


def test_lantern_users_remove_while_the_server_runs_ends_logins(shared_app: SharedApp) -> None:
    browser = shared_app.login("bob")
    assert browser.get("/api/conversations").status_code == 200
    assert shared_app.users("remove", "bob").returncode == 0
    _until(lambda: browser.get("/api/conversations").status_code == 401, seconds=5)
    browser.close()
