"""Issue #16, item 4: a user or token name never becomes a NiceGUI `:prop`, which the browser runs as JavaScript."""

from __future__ import annotations

from typing import Any

from nicegui import ui
from nicegui.testing import User

from components.buttons import icon_button
from storage import users as user_repo
from storage.engine import Database
from tests.security.conftest import ADMIN_PASSWORD, MEMBER_PASSWORD, SharedApp

# NiceGUI parses a props string into key=value pairs; a quote ends the value and a `:key` is evaluated as JS.
SPACED_PAYLOAD = 'x" :onclick="window.__pwn=1'
# User names may not hold whitespace: the label's own space ("Remove <name>") does the job, and the
# payload ends the props string, so the parser takes `:aria-hidden` as one more prop.
NAME_PAYLOAD = 'eve":aria-hidden="(window.__pwn=1)'
TOKEN_PAYLOAD = 'nightly" :title="(window.__pwn=2)'


async def test_a_quote_in_a_label_stays_inside_aria_label(user: User) -> None:
    @ui.page("/probe-icon-buttons")
    def probe() -> None:
        icon_button("delete", "Remove x", lambda: None, marker="plain")
        icon_button("delete", SPACED_PAYLOAD, lambda: None, marker="hostile")

    await user.open("/probe-icon-buttons")
    plain = next(iter(user.find(marker="plain").elements))
    hostile = next(iter(user.find(marker="hostile").elements))
    assert hostile.props["aria-label"] == SPACED_PAYLOAD  # the whole text, quotes and all
    assert set(hostile.props) == set(plain.props)  # no prop more than an innocent label gives
    assert [key for key in hostile.props if key.startswith(":")] == []


def add_user_named(app: SharedApp, name: str) -> None:
    """An account with this name, through `lantern users add` if it takes the name."""
    # A stricter name rule may refuse it there; straight into the database then: a rule added later does not
    # clean the names already stored, and the list must still show them inertly.
    if app.users("add", name, password="eve long password phrase").returncode == 0:
        return
    db = Database(f"sqlite:///{app.data / 'lantern.db'}")
    db.open()
    try:
        db.session_call(user_repo.add_user, name=name, password_hash="not a hash: eve never logs in")
    finally:
        db.close()


async def log_in(browser: Any, app: SharedApp, name: str, password: str) -> None:
    """Through the real login page, as a person would."""
    await browser.goto(app.url + "/")
    await browser.get_by_label("Name").fill(name)
    await browser.get_by_label("Password").fill(password)
    await browser.get_by_role("button", name="Log in").click()
    await browser.get_by_placeholder("Message Lantern…").wait_for(timeout=20_000)


async def test_a_user_name_cannot_run_script_on_the_admins_users_list(shared_app: SharedApp, page: Any) -> None:
    add_user_named(shared_app, NAME_PAYLOAD)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await log_in(page, shared_app, "ada", ADMIN_PASSWORD)
    await page.goto(shared_app.url + "/settings")
    await page.get_by_text(NAME_PAYLOAD, exact=True).wait_for(timeout=20_000)  # the name is listed, as text
    assert await page.evaluate("window.__pwn") is None
    remove = page.get_by_role("button", name=f"Remove {NAME_PAYLOAD}", exact=True)
    assert await remove.count() == 1  # its accessible name is the whole label
    assert errors == []


async def test_a_token_name_cannot_run_script_on_the_settings_page(shared_app: SharedApp, page: Any) -> None:
    await log_in(page, shared_app, "bob", MEMBER_PASSWORD)
    await page.goto(shared_app.url + "/settings")
    await page.get_by_label("Token name").fill(TOKEN_PAYLOAD)
    await page.get_by_role("button", name="Create token").click()
    await page.get_by_text("Copy your new token now").wait_for(timeout=20_000)
    assert await page.evaluate("window.__pwn") is None
    await page.reload()  # and as the list is drawn afresh
    await page.get_by_text(TOKEN_PAYLOAD, exact=True).wait_for(timeout=20_000)
    assert await page.evaluate("window.__pwn") is None
    assert await page.get_by_role("button", name=f"Revoke {TOKEN_PAYLOAD}", exact=True).count() == 1
