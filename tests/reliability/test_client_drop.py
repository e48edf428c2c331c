"""Client faults: the browser closed in the middle of a reply. The run completes server-side and the
conversation in history holds the whole reply. (A dropped API connection: tests/api/test_api.py,
test_a_client_that_disconnects_does_not_stop_the_reply.)"""

from __future__ import annotations

import shutil
import time

import httpx
import pytest

from tests.conftest import AppProcess
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.reliability.conftest import wait_for

REPLY = "".join(f"line {i}\n\n" for i in range(150))  # ~1,300 characters: about 2.5 s at the fake's pace
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic"]


async def test_closing_the_browser_mid_reply_leaves_the_reply_to_finish(app: AppProcess, fake: FakeOpenAI) -> None:
    playwright = pytest.importorskip("playwright.async_api", reason="pip install -e '.[dev]' (playwright)")
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    fake.replies = [Reply(text=REPLY, chunk=5, delay=0.01)]
    async with playwright.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = await browser.new_page()
            await page.goto(app.url)
            await page.get_by_text("Ask anything").wait_for()
            await page.get_by_label("Model").click()
            await page.get_by_role("option", name="fake/m").click()
            box = page.get_by_placeholder("Message Lantern…")
            await box.fill("Write me a long list")
            await box.press("Enter")
            await page.wait_for_function("() => (document.querySelector('.lantern-md')?.innerText || '').length > 40")
        finally:
            await browser.close()  # the whole browser goes, mid-reply
    closed = time.monotonic()
    assert fake.open_streams == 1, "the reply should still be streaming when the browser goes"

    def reply() -> dict[str, object]:
        listing = httpx.get(f"{app.url}/api/conversations", params={"q": "long list"}, timeout=10).json()
        conv = httpx.get(f"{app.url}/api/conversations/{listing['items'][0]['id']}", timeout=10).json()
        return dict(conv["messages"][-1])

    wait_for(lambda: reply()["status"] != "running", timeout=30, interval=0.2)
    final = reply()
    assert final["status"] == "completed" and str(final["content"]).strip() == REPLY.strip()
    assert time.monotonic() - closed > 0.5  # it really finished after the browser had gone
