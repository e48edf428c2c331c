"""Accounts on SQLite and PostgreSQL: sessions expire and end, tokens revoke, removed users are out."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.accounts.service import digest
from services.core.errors import BadInput, NotAuthenticated, NotFound

PASSWORD = "correct horse battery"


async def test_sessions_expire_and_end(lantern: Any) -> None:
    accounts = lantern.accounts
    ada = await accounts.add_user("ada", PASSWORD, "admin")
    principal = await accounts.login("ada", PASSWORD, "10.0.0.1")
    assert principal.user_id == ada.id and principal.is_admin
    token = await accounts.start_session(principal)
    page = await accounts.from_session(token)
    assert page is not None and accounts.session_alive(page)
    await accounts.end_session(digest(token))
    assert await accounts.from_session(token) is None and not accounts.session_alive(page)
    accounts.session_hours = 0.3 / 3600  # 0.3 s
    short = await accounts.start_session(principal)
    assert await accounts.from_session(short) is not None
    await asyncio.sleep(0.4)
    accounts._cache.clear()  # the cache lives ≤ 30 s; expiry is decided by the database
    assert await accounts.from_session(short) is None


async def test_password_change_and_removal_end_logins(lantern: Any) -> None:
    accounts = lantern.accounts
    await accounts.add_user("bob", PASSWORD, "member")
    token = await accounts.start_session(await accounts.login("bob", PASSWORD, "10.0.0.2"))
    open_page = await accounts.from_session(token)
    await accounts.set_password("bob", "a brand new password")
    assert await accounts.from_session(token) is None and not accounts.session_alive(open_page)
    with pytest.raises(NotAuthenticated):
        await accounts.login("bob", PASSWORD, "10.0.0.2")
    _, secret = await accounts.create_token((await accounts.login("bob", "a brand new password", "x")).user_id,
                                            "script")
    assert await accounts.from_token(secret) is not None
    await accounts.remove_user("bob")
    assert await accounts.from_token(secret) is None  # a removed user's tokens stop too
    with pytest.raises(NotAuthenticated):
        await accounts.login("bob", "a brand new password", "10.0.0.2")
    with pytest.raises(NotFound):
        await accounts.remove_user("bob")


async def test_tokens_and_bad_input(lantern: Any) -> None:
    accounts = lantern.accounts
    cyd = await accounts.add_user("cyd", PASSWORD, "member")
    with pytest.raises(BadInput, match="name"):
        await accounts.create_token(cyd.id, "  ")
    for name, password, role, says in [("cyd", PASSWORD, "member", "already exists"),
                                       ("two words", PASSWORD, "member", "without spaces"),
                                       ("dee", "short", "member", "at least 10"),
                                       ("dee", PASSWORD, "owner", "role is one of")]:
        with pytest.raises(BadInput, match=says):
            await accounts.add_user(name, password, role)
    token, secret = await accounts.create_token(cyd.id, "report")
    assert secret.startswith("lt_") and token.prefix == secret[:8]
    assert [t.name for t in await accounts.tokens(cyd.id)] == ["report"]
    await accounts.revoke_token(cyd.id, token.id)
    assert await accounts.from_token(secret) is None
    with pytest.raises(NotFound):
        await accounts.revoke_token(cyd.id, token.id)
