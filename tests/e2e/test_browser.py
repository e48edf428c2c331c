"""The real app in a real browser: streamed local-model replies, and output that never runs."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest

from tests.conftest import AppProcess


async def send(page: Any, text: str) -> None:
    box = page.get_by_placeholder("Message Lantern…")
    await box.fill(text)
    await box.press("Enter")


async def test_local_model_reply_streams_token_by_token(app_process: AppProcess, page: Any) -> None:
    from services.providers.local import LocalProvider

    if (reason := LocalProvider().unavailable_reason()) is not None:
        pytest.skip(f"embedded model unavailable: {reason}")
    await page.goto(app_process.url)
    await page.get_by_text("Ask anything").wait_for()
    await send(page, "Write three sentences about lanterns.")
    reply = page.locator(".lantern-md").last
    lengths: list[int] = []
    for _ in range(300):
        text = await reply.inner_text() if await reply.count() else ""
        if not lengths or len(text) != lengths[-1]:
            lengths.append(len(text))
        if await page.locator(".lantern-msg-foot", has_text="local/smollm2 ·").count():
            break
        await asyncio.sleep(0.05)
    await page.locator(".lantern-msg-foot", has_text="local/smollm2 ·").wait_for(timeout=60_000)
    final = await reply.inner_text()
    assert final.strip(), "the reply is empty"
    assert len(lengths) >= 3, f"the reply did not grow in steps: {lengths}"
    assert "/chat/" in page.url  # the address now names the conversation
    listing = httpx.get(f"{app_process.url}/api/conversations").json()
    conv = httpx.get(f"{app_process.url}/api/conversations/{listing['items'][0]['id']}").json()
    assert conv["messages"][-1]["status"] == "completed"
    assert conv["messages"][-1]["content"].strip()[:20] in final


async def test_html_and_script_in_model_output_never_run(app_process: AppProcess, page: Any) -> None:
    await page.goto(app_process.url)
    await page.get_by_text("Ask anything").wait_for()
    await page.get_by_label("Model").click()
    await page.get_by_role("option", name="scripted/xss").click()
    await send(page, "Show me some HTML")
    await page.get_by_text(re.compile(r"scripted/xss · \d+ in")).wait_for(timeout=20_000)
    reply = page.locator(".lantern-md").last
    text = await reply.inner_text()
    assert "<script>window.__xss = 1</script>" in text  # shown as text
    assert await reply.locator("script, img").count() == 0
    link = reply.locator("a")
    assert await link.count() == 0 or "javascript:" not in (await link.first.get_attribute("href") or "")
    if await link.count():
        await link.first.click()
    assert await page.evaluate("window.__xss") is None


async def choose_model(page: Any, model: str) -> None:
    await page.get_by_label("Model").click()
    await page.get_by_role("option", name=model).click()


async def test_reload_mid_reply_continues_and_esc_stops(app_process: AppProcess, page: Any) -> None:
    await page.goto(app_process.url)
    await page.get_by_text("Ask anything").wait_for()
    await choose_model(page, "scripted/slow")
    await send(page, "Talk for a while")
    reply = page.locator(".lantern-md").last
    box = page.get_by_placeholder("Message Lantern…")
    await page.wait_for_function("() => document.querySelector('textarea').value === ''", timeout=5_000)
    await page.wait_for_function("() => (document.querySelector('.lantern-md')?.innerText || '').length > 50")
    await page.reload()  # the run goes on without the tab; the new page replays and follows it
    await page.get_by_role("main").get_by_text("Talk for a while").wait_for()
    # Everything written so far is replayed into the new page within a frame or two.
    await page.wait_for_function("() => (document.querySelector('.lantern-md')?.innerText || '').length > 50",
                                 timeout=5_000)
    before = len(await reply.inner_text())
    await page.wait_for_function(f"() => document.querySelector('.lantern-md').innerText.length > {before + 20}")
    stop, send_button = page.get_by_role("button", name="Stop (Esc)"), page.get_by_role("button", name="Send (Enter)")
    assert await stop.is_visible() and not await send_button.is_visible()  # while a reply is written: Stop
    await page.keyboard.press("Escape")
    await page.get_by_text("stopped").wait_for(timeout=10_000)
    await send_button.wait_for(state="visible", timeout=5_000)
    assert not await stop.is_visible()  # and Send again once it ended
    kept = await reply.inner_text()
    await asyncio.sleep(0.5)
    assert await reply.inner_text() == kept  # nothing arrives after stop
    listing = httpx.get(f"{app_process.url}/api/conversations").json()
    conv = httpx.get(f"{app_process.url}/api/conversations/{listing['items'][0]['id']}").json()
    assert conv["messages"][-1]["status"] == "stopped"
    assert conv["messages"][-1]["content"].strip() == kept.strip()
    await send(page, "And now?")  # the box was cleared: only the new text is sent
    await page.get_by_role("main").get_by_text("And now?", exact=True).wait_for(timeout=10_000)
    assert await box.input_value() == ""
    conv = httpx.get(f"{app_process.url}/api/conversations/{listing['items'][0]['id']}").json()
    assert [m["content"] for m in conv["messages"] if m["role"] == "user"] == ["Talk for a while", "And now?"]


async def test_a_dropped_connection_mid_reply_loses_and_repeats_no_word(app_process: AppProcess, page: Any) -> None:
    """The socket drops while a reply streams: on reconnect the text goes on where it was, once."""
    await page.goto(app_process.url)
    await page.get_by_text("Ask anything").wait_for()
    await choose_model(page, "scripted/slow")
    await send(page, "Talk for a while")
    await page.wait_for_function("() => (document.querySelector('.lantern-md')?.innerText || '').length > 200")
    engine = await page.evaluate("window.socket.io.engine.id")
    await page.evaluate("window.socket.io.engine.transport.ws.close()")  # as if the network dropped it
    await page.wait_for_function(f"() => window.socket.connected && window.socket.io.engine.id !== {engine!r}",
                                 timeout=15_000)
    await page.get_by_role("main").get_by_text("400 out tokens").wait_for(timeout=30_000)
    shown = await page.locator(".lantern-md").last.inner_text()
    listing = httpx.get(f"{app_process.url}/api/conversations").json()
    conv = httpx.get(f"{app_process.url}/api/conversations/{listing['items'][0]['id']}").json()
    assert conv["messages"][-1]["status"] == "completed"
    assert shown.split() == conv["messages"][-1]["content"].split() == ["word"] * 400


async def test_redrawn_history_and_tool_cards_show_their_text(app_process: AppProcess, page: Any) -> None:
    """Bodies filled after the element reached the browser (tool cards, redraws) must still show."""
    await page.goto(f"{app_process.url}/tools")
    await choose_model(page, "scripted/analyst")
    export = page.get_by_role("button", name="Export")
    assert await export.is_hidden()  # nothing to export yet
    await send(page, "How many regions?")
    await export.wait_for()  # the conversation exists now
    card = page.locator(".q-expansion-item").filter(has_text="sql_query")
    await card.get_by_text("SELECT COUNT(*) AS regions FROM regions").wait_for(timeout=15_000)
    await card.get_by_text("1 row").wait_for()
    await page.get_by_text("We sell in 5 regions.").wait_for()
    # Regenerate redraws the thread: the user's question and the older reply must still read.
    await page.get_by_role("button", name="Regenerate").last.click()
    await page.get_by_text("2/2").wait_for(timeout=15_000)
    await page.get_by_role("button", name="Previous version").click()
    await page.get_by_text("1/2").wait_for()
    assert await page.get_by_role("button", name="Previous version").is_disabled()
    assert await page.get_by_role("button", name="Next version").is_enabled()
    heads = [await h.inner_text() for h in await page.locator(".lantern-msg-head").all()]
    assert "You" in heads[0] and "Assistant" in heads[1]
    assert all(re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", h) for h in heads)  # when, in the reader's zone
    # The sidebar row's actions button opens the shared menu (one listener on the list hears the click).
    actions = page.get_by_role("button", name="Actions", exact=True).first
    described_by = await actions.get_attribute("aria-describedby")
    assert await page.locator(f"#{described_by}").inner_text() == "How many regions?"  # its row's title
    await actions.click()
    await page.locator(".q-menu").get_by_text("Rename").click()
    await page.get_by_text("Rename conversation").wait_for()
    await page.locator(".q-expansion-item").filter(has_text="sql_query").first \
        .get_by_text("SELECT COUNT(*) AS regions FROM regions").wait_for()


EDGE_CASES = '''# Edge <script>window.__xss = 1</script>

[click](javascript:window.__xss=3) <img src=x onerror="window.__xss = 2"> `code <b>` ~~gone~~

```js
const s = "<b>&amp;</b>"; // 'quotes' é 😀 U+2028:\u2028.
```

```
plain fence <i>
```

```nosuchlang
x < y && "z"
```

~~~python


def f():
    """doc"""
    return '\\t' + "😀"


~~~

- a list with ```inline``` ticks
- and a fence in it:

  ```sh
  echo "hi" > /dev/null
  ```

> quoted
> ```ruby
> puts "x"
> ```

| a | b |
|---|:-:|
| <i>x</i> | **y** é |
'''


async def test_streamed_blocks_render_exactly_as_on_the_server(tmp_path: Any, page: Any) -> None:
    """The browser renders finished blocks itself: the same HTML the server's renderer gives, and safe."""
    from bench.stream_browser import make_reply
    from components.blocks import BlockSplitter
    from components.render import render_markdown
    from tests.fakes.openai_server import FakeOpenAI, Reply

    text = EDGE_CASES + "\n" + make_reply(600)
    with FakeOpenAI(replies=[Reply(text=text, chunk=7, delay=0.001)]) as fake:
        compat = json.dumps({"fake": {"base_url": fake.base_url, "models": ["md"]}})
        app = AppProcess(tmp_path / "data", {"LANTERN_OPENAI_COMPAT": compat, "LANTERN_DEFAULT_MODEL": "fake/md"})
        try:
            await asyncio.to_thread(app.wait_ready)
            await page.goto(app.url)
            await page.get_by_text("Ask anything").wait_for()
            await send(page, "Render some markdown")
            await page.get_by_text(re.compile(r"fake/md · \d+ in")).wait_for(timeout=60_000)
            splitter = BlockSplitter()
            splitter.feed(text)
            expected = [render_markdown(block) for block in splitter.finish()]
            # Both sides through the browser's parser, so that only the DOM is compared.
            shown, wanted = await page.evaluate("""(expected) => {
                const reply = [...document.querySelectorAll('.lantern-md')].pop();
                const blocks = reply.querySelectorAll('.lantern-block');
                const normal = (html) => {
                    const d = document.createElement('div');
                    d.innerHTML = html;
                    return d.innerHTML;
                };
                return [[...blocks].map((b) => b.innerHTML), expected.map(normal)];
            }""", expected)
            assert len(shown) == len(wanted)
            for got, want in zip(shown, wanted, strict=True):
                assert got == want
            reply = page.locator(".lantern-md").last
            assert await reply.locator("script, img, [onerror]").count() == 0
            assert await reply.locator("pre.hl .k").count() > 0  # keywords highlighted
            assert await page.evaluate("window.__xss") is None
        finally:
            app.stop()


@pytest.mark.parametrize("dark", [False, True])
async def test_a_long_paste_scrolls_inside_an_opaque_composer(app_process: AppProcess, page: Any, dark: bool) -> None:
    await page.set_viewport_size({"width": 1000, "height": 700})
    await page.goto(app_process.url)
    composer = page.get_by_placeholder("Message Lantern…")
    await composer.wait_for()
    if dark:
        await page.keyboard.press("Control+Shift+D")
    await composer.fill("\n".join(f"line {i} of a long paste" for i in range(40)))
    box = await page.locator(".lantern-composer").bounding_box()
    assert box is not None and box["y"] + box["height"] <= 700  # before: the box grew past the window
    send_button = page.get_by_role("button", name="Send")
    assert await send_button.is_visible() and (await send_button.bounding_box() or {"y": 9999})["y"] < 700
    background = await page.locator(".lantern-composer").evaluate("e => getComputedStyle(e).backgroundColor")
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")  # before: the conversation showed through
