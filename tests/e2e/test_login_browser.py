"""Shared mode in a real browser: log in, chat, log out, and the chat is gone for good."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, AppProcess

PASSWORD = "lantern keeper phrase"


@pytest.fixture
def shared_app(tmp_path: Path) -> Iterator[AppProcess]:
    """The app with login required, one account `ada`, replies from a scripted model."""
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NICEGUI_"))}
    env["LANTERN_DATA_DIR"] = str(data)
    added = subprocess.run([sys.executable, "-m", "app", "users", "add", "ada", "--password-stdin"], cwd=ROOT,
                           env=env, input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    proc = AppProcess(data, {"LANTERN_REQUIRE_LOGIN": "1", "LANTERN_DEFAULT_MODEL": "scripted/hello"})
    proc.wait_ready()
    yield proc
    proc.stop()
    assert PASSWORD not in proc.log.read_text()  # the server log never holds the password


async def test_log_in_chat_log_out_and_no_way_back(shared_app: AppProcess, page: Any) -> None:
    await page.goto(shared_app.url + "/")
    await page.get_by_label("Name").fill("ada")
    await page.get_by_label("Password").fill("wrong password!")
    await page.get_by_role("button", name="Log in").click()
    await page.get_by_text("Wrong name or password.").wait_for()
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_label("Password").press("Enter")
    composer = page.get_by_placeholder("Message Lantern…")
    await composer.wait_for(timeout=20_000)
    await composer.fill("Hello from the intranet")
    await composer.press("Enter")
    await page.get_by_text("Here is a list:").wait_for(timeout=20_000)
    cookies = {c["name"]: c for c in await page.context.cookies()}
    session = cookies["lantern_session"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    chat_url = page.url
    assert "/chat/" in chat_url

    await page.get_by_role("button", name="Account").click()
    await page.get_by_text("Log out").click()
    await page.get_by_role("button", name="Log in").wait_for()
    await page.go_back()  # history cannot bring the conversation back
    await page.get_by_role("button", name="Log in").wait_for()
    assert await page.get_by_text("Hello from the intranet").count() == 0
    await page.goto(chat_url)
    await page.get_by_role("button", name="Log in").wait_for()
    assert await page.get_by_text("Hello from the intranet").count() == 0
    replay = httpx.get(f"{shared_app.url}/api/conversations", cookies={"lantern_session": session["value"]})
    assert replay.status_code == 401  # the session is dead on the server, not only forgotten by the browser
