"""Items 1 and 2: the page socket needs the page's own user, from this site; a socket speaks only for its own
page; an ended login closes its sockets and no click on its open pages changes anything."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import socketio

from tests.security.conftest import SharedApp
from tests.security.sockets import connect, cookie_header, open_page

REVOKE = "Revoke script"


def token_works(app: SharedApp, secret: str) -> bool:
    """Whether the API still takes the token."""
    return httpx.get(f"{app.url}/api/conversations", headers={"Authorization": f"Bearer {secret}"}).status_code == 200


async def test_a_page_socket_needs_that_pages_user_and_this_sites_origin(shared_app: SharedApp) -> None:
    ada = shared_app.login("ada")
    bob = shared_app.login("bob")
    page = open_page(ada, "/settings")
    for cookie, origin in [(None, None),  # nobody: before the fix this socket joined ada's page
                           (cookie_header(bob), None),  # another user
                           (cookie_header(ada), "http://evil.example")]:  # ada's cookie, another site's page
        with pytest.raises(socketio.exceptions.ConnectionError):
            socket = await connect(shared_app.url, page.client_id, cookie=cookie, origin=origin)
            await socket.close()
    own = await connect(shared_app.url, page.client_id, cookie=cookie_header(ada), origin=shared_app.url)
    assert own.sio.connected
    await own.close()


async def test_a_socket_cannot_click_on_another_users_page(shared_app: SharedApp) -> None:
    secret = shared_app.token("ada")
    ada, bob = shared_app.login("ada"), shared_app.login("bob")
    adas_page = open_page(ada, "/settings")
    element, listener = adas_page.click_listener(REVOKE)
    adas_socket = await connect(shared_app.url, adas_page.client_id, cookie=cookie_header(ada))
    bobs_page = open_page(bob, "/settings")
    bobs_socket = await connect(shared_app.url, bobs_page.client_id, cookie=cookie_header(bob))
    await bobs_socket.click(adas_page.client_id, element, listener)  # bob names ada's page in his message
    await asyncio.sleep(1.5)
    assert token_works(shared_app, secret)  # before the fix: bob revoked ada's token
    await adas_socket.click(adas_page.client_id, element, listener)  # ada herself may
    deadline = time.monotonic() + 5
    while token_works(shared_app, secret) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert not token_works(shared_app, secret)
    await adas_socket.close()
    await bobs_socket.close()


async def test_after_logout_an_open_page_changes_nothing_and_its_socket_closes(shared_app: SharedApp) -> None:
    secret = shared_app.token("ada")
    ada = shared_app.login("ada")
    page = open_page(ada, "/settings")
    element, listener = page.click_listener(REVOKE)
    socket = await connect(shared_app.url, page.client_id, cookie=cookie_header(ada))
    assert ada.get("/logout").status_code == 303
    await socket.click(page.client_id, element, listener)  # the tab was left open
    await asyncio.wait_for(socket.disconnected.wait(), 5)  # the server closes it
    await asyncio.sleep(0.5)
    assert token_works(shared_app, secret)  # before the fix: the old page still revoked (or created) tokens
    with pytest.raises(socketio.exceptions.ConnectionError):  # and cannot come back
        await connect(shared_app.url, page.client_id, cookie=cookie_header(ada))


async def test_a_password_reset_by_the_cli_closes_open_pages(shared_app: SharedApp) -> None:
    bob = shared_app.login("bob")
    page = open_page(bob, "/settings")
    socket = await connect(shared_app.url, page.client_id, cookie=cookie_header(bob))
    assert shared_app.users("passwd", "bob", password="another long password").returncode == 0
    await asyncio.wait_for(socket.disconnected.wait(), 5)
    assert ("try_reconnect", {}) in socket.received  # the browser reloads into the login page


async def test_another_browser_cannot_join_even_the_login_page(shared_app: SharedApp) -> None:
    victim = httpx.Client(base_url=shared_app.url)
    page = open_page(victim, "/login")  # the client id (and tab id) may show in a proxy's log
    with pytest.raises(socketio.exceptions.ConnectionError):  # before: the attacker joined the victim's page
        await connect(shared_app.url, page.client_id)
    attacker = httpx.Client(base_url=shared_app.url)
    open_page(attacker, "/login")  # a browser id of the attacker's own
    with pytest.raises(socketio.exceptions.ConnectionError):
        await connect(shared_app.url, page.client_id, cookie=cookie_header(attacker))
    own = await connect(shared_app.url, page.client_id, cookie=cookie_header(victim))
    assert own.sio.connected
    await own.close()


def test_pages_take_only_browser_logins_not_basic_credentials(shared_app: SharedApp) -> None:
    from tests.security.conftest import ADMIN_PASSWORD

    basic = httpx.Client(base_url=shared_app.url, auth=("ada", ADMIN_PASSWORD))
    page = basic.get("/settings", headers={"Accept": "text/html"})
    # Before: 200, a page held by remembered Basic credentials, which no logout or password change could end.
    assert page.status_code == 303 and "/login" in page.headers["location"]
    assert basic.get("/api/conversations").status_code == 200  # scripts keep Basic for the API
