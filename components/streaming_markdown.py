"""A message body that streams markdown at O(n) cost: each character travels once, as a delta."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from nicegui import background_tasks, ui

from components.blocks import BlockSplitter
from components.render import fence_hints, utf16_len

FRAME_MESSAGE = "sm"

# Frames travel as their own socket.io message, `42["sm",{"i":id,"d":text,...,"_id":n}]`: ~32 bytes of
# framing where `run_javascript` took ~58, and the text is escaped once, as JSON. They must keep their place
# among NiceGUI's messages (the element they feed is created by an earlier one, whose component may still
# be loading), so the browser hands each to NiceGUI's own ordered queue, through its run_javascript
# handler, as a tiny call that takes the next frame. A frame already seen (a reconnect replays its missed
# messages by id) is dropped first, so the queue and the frames stay in step. The hook is installed when
# NiceGUI creates its socket, before any message can arrive: every page that can show this element puts it
# in its head (`app/pages/frame.py`).
RELAY_JS = """<script>(() => {
  const frames = [];
  globalThis._smNext = () => { const m = frames.shift(); globalThis._sm(m.i, m.d, m.b, m.e); };
  let socket;
  Object.defineProperty(window, "socket", { configurable: true, get: () => socket, set(value) {
    socket = value;
    value.on("__FRAME__", (m) => {
      if (m._id !== undefined && m._id < window.nextMessageId) return;
      frames.push(m);
      value.listeners("run_javascript")[0]({ code: "_smNext()", _id: m._id });
    });
  } });
})();</script>""".replace("__FRAME__", FRAME_MESSAGE)


class StreamingMarkdown(ui.element, component="streaming_markdown.js",
                        dependencies=["vendor/markdown-it.min.js"]):
    """Feed deltas with `append`; the browser gets them in coalesced frames.

    A frame carries the new text and, for each block that can no longer change, its length and the
    Pygments token runs of its code blocks; the browser renders the block then (markdown-it, the
    original of the server's parser, HTML disabled). So the text is sent once, never as HTML too.
    Frames go out at most `FPS` times a second and only once `MIN_CHARS` have gathered, or
    `MAX_WAIT` seconds after the last one: each frame costs ~32 bytes of framing, so frames of 200+
    characters keep it near 0.15 byte per character (the budget is 2 bytes per character in all);
    a stream slower than 800 characters/s is still shown at least every `MAX_WAIT`. The browser reveals
    each frame's text over ~200 ms, so what a person sees still moves smoothly.
    """

    FPS = 25
    MIN_CHARS = 200
    MAX_WAIT = 0.25

    def __init__(self, *, live: bool = True) -> None:
        super().__init__()
        self._splitter = BlockSplitter()
        self._pending: list[str] = []
        self._pending_chars = 0
        self._closing = False
        self._wake = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._version = 0
        if not live:  # the browser's default is an empty live body: a reply's first update carries no state
            self._props["state"] = {"t": "", "b": [], "l": False, "v": 0}

    @property
    def text(self) -> str:
        """Everything received so far."""
        return self._splitter.text

    def _displayed_contents(self, *, only_visible: bool) -> list[object]:
        """What a person reads here (for NiceGUI's element filters and the User fixture)."""
        return [self._splitter.text]

    async def load(self, text: str, *, live: bool) -> None:
        """Show existing text at once (history, or a reply being re-attached to)."""
        splitter = BlockSplitter()
        splitter.feed(text)
        blocks = await asyncio.to_thread(_encode, splitter.take_blocks() if live else splitter.finish())
        self._splitter = splitter
        self._pending.clear()
        self._pending_chars = 0
        # One whole-element update: a drawn element sees the new version and starts again from it.
        self._version += 1
        self._props["state"] = {"t": text, "b": blocks, "l": live, "v": self._version}
        self.update()

    def append(self, delta: str) -> None:
        """Add streamed text; it reaches the browser within `MAX_WAIT` seconds."""
        self._splitter.feed(delta)
        self._pending.append(delta)
        self._pending_chars += len(delta)
        if self._pump is None:
            self._pump = background_tasks.create(self._run(), name="stream-markdown")

    async def finish(self) -> None:
        """The stream ended: send the rest at once and stop the caret."""
        self._closing = True
        self._wake.set()
        if self._pump is None:
            self._pump = background_tasks.create(self._run(), name="stream-markdown")
        await asyncio.shield(self._pump)

    async def _run(self) -> None:
        """Send coalesced frames until the stream is finished."""
        loop = asyncio.get_running_loop()
        last = -self.MAX_WAIT  # the first text goes out at once
        while not self.is_deleted:
            closing = self._closing
            waited = loop.time() - last
            if closing or (self._pending_chars and (waited >= self.MAX_WAIT or (
                    self._pending_chars >= self.MIN_CHARS and waited >= 1 / self.FPS))):
                await self._send_frame(closing)
                last = loop.time()
                if closing:
                    return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1 / self.FPS)

    async def _send_frame(self, closing: bool) -> None:
        """New text, the blocks finished since the last frame, and whether the stream ended."""
        blocks = self._splitter.finish() if closing else self._splitter.take_blocks()
        encoded = await asyncio.to_thread(_encode, blocks) if blocks else []
        if not self._is_safe_to_interact():
            return
        # Read after the (threaded) highlighting: text that arrived meanwhile goes in this frame too.
        delta = "".join(self._pending)
        self._pending.clear()
        self._pending_chars = 0
        frame: dict[str, Any] = {"i": self.id, "d": delta}
        if encoded:
            frame["b"] = encoded
        if closing:
            frame["e"] = 1
        # Its own socket.io message, in order with NiceGUI's (see RELAY_JS).
        self.client.outbox.enqueue_message(FRAME_MESSAGE, frame, self.client.id)


def _encode(blocks: list[str]) -> list[Any]:
    """Blocks as [length in UTF-16 units, then its fence hints if it has fences, ...] (worker thread: lexing
    is slow)."""
    out: list[Any] = []
    for block in blocks:
        out.append(utf16_len(block))
        if hints := fence_hints(block):
            out.append(hints)
    return out
