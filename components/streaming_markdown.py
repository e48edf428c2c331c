"""A message body that streams markdown at O(n) cost: frozen blocks plus a live text tail."""

from __future__ import annotations

import asyncio

from nicegui import background_tasks, ui

from components.blocks import BlockSplitter
from components.render import render_markdown


class StreamingMarkdown(ui.element, component="streaming_markdown.js"):
    """Feed deltas with `append`; updates are coalesced to `FPS` per second.

    Each finished block is rendered to HTML once (in a worker thread, since highlighting
    is slow) and sent once; between blocks only new characters travel to the browser.
    """

    FPS = 25

    def __init__(self, *, live: bool = True) -> None:
        super().__init__()
        self._splitter = BlockSplitter()
        self._pending: list[str] = []
        self._closing = False
        self._pump: asyncio.Task[None] | None = None
        self._props["initialBlocks"] = []
        self._props["initialTail"] = ""
        self._props["live"] = live

    @property
    def text(self) -> str:
        """Everything received so far."""
        return self._splitter.text

    def _displayed_contents(self, *, only_visible: bool) -> list[object]:
        """What a person reads here (for NiceGUI's element filters and the User fixture)."""
        return [self._splitter.text]

    async def load(self, text: str, *, live: bool) -> None:
        """Show existing text at once (history, or a reply being re-attached to)."""
        self._splitter = BlockSplitter()
        self._splitter.feed(text)
        blocks = self._splitter.take_blocks() if live else self._splitter.finish()
        html = await asyncio.to_thread(_render_all, blocks)
        tail = self._splitter.tail if live else ""
        # Props reach an element the browser has not drawn yet; `reset` one it already has
        # (a component reads its initial props only once). Whichever applies, the other is a no-op.
        self._props["initialBlocks"] = html
        self._props["initialTail"] = tail
        self._props["live"] = live
        self.update()
        self.run_method("reset", html, tail, live)

    def append(self, delta: str) -> None:
        """Add streamed text; it reaches the browser within one frame."""
        self._splitter.feed(delta)
        self._pending.append(delta)
        if self._pump is None:
            self._pump = background_tasks.create(self._run(), name="stream-markdown")

    async def finish(self) -> None:
        """The stream ended: render the last block and stop the caret."""
        self._closing = True
        if self._pump is None:
            self._pump = background_tasks.create(self._run(), name="stream-markdown")
        await asyncio.shield(self._pump)

    async def _run(self) -> None:
        """Send coalesced updates until the stream is finished."""
        while not self.is_deleted:
            closing = self._closing
            blocks = self._splitter.finish() if closing else self._splitter.take_blocks()
            if blocks:
                html = await asyncio.to_thread(_render_all, blocks)
                if self.is_deleted:
                    return
                # The tail is read after rendering, together with clearing pending: consistent.
                self.run_method("freeze", html, "" if closing else self._splitter.tail)
                self._pending.clear()
            elif self._pending:
                self.run_method("append", "".join(self._pending))
                self._pending.clear()
            if closing:
                self.run_method("done")
                return
            await asyncio.sleep(1 / self.FPS)


def _render_all(blocks: list[str]) -> list[str]:
    """Render blocks (worker thread)."""
    return [render_markdown(b) for b in blocks]
