"""Incremental markdown block splitting: find where finished blocks end, in O(n) over a stream."""

from __future__ import annotations


class BlockSplitter:
    """Feed text as it streams; `take_blocks()` returns blocks that can no longer change.

    A block ends at a blank line outside a fenced code block, or right after a closing fence.
    Blocks are contiguous: blank lines between blocks start the next one, so the lengths of the
    taken blocks always add up to where the tail starts. Only new complete lines are scanned, so a
    whole reply costs O(n).
    """

    def __init__(self) -> None:
        self.text = ""
        self._scanned = 0  # index of the first unscanned character (always at a line start)
        self._block_start = 0  # start of the block being built (not yet taken)
        self._ready: list[str] = []
        self._fence: str | None = None  # the opening fence marker while inside a code block

    def feed(self, delta: str) -> None:
        """Add streamed text and scan whatever complete lines it finished."""
        self.text += delta
        while (end := self.text.find("\n", self._scanned)) != -1:
            self._scan_line(self.text[self._scanned:end], end + 1)
            self._scanned = end + 1

    def take_blocks(self) -> list[str]:
        """Blocks finished since the last call."""
        ready, self._ready = self._ready, []
        return ready

    @property
    def tail(self) -> str:
        """The text of the block still being written."""
        return self.text[self._block_start:]

    def finish(self) -> list[str]:
        """End of stream: every remaining block is final."""
        rest = self.tail
        self._block_start = len(self.text)
        self._scanned = len(self.text)
        blocks = self.take_blocks()
        return blocks + ([rest] if rest.strip() else [])

    def _scan_line(self, line: str, next_start: int) -> None:
        """Advance the block state machine by one complete line."""
        stripped = line.strip()
        if self._fence is not None:
            if stripped.startswith(self._fence) and stripped.strip(self._fence[0]) == "":
                self._fence = None
                self._close(next_start)
            return
        if stripped.startswith(("```", "~~~")):
            marker = stripped[0] * (len(stripped) - len(stripped.lstrip(stripped[0])))
            self._fence = marker
            return
        if not stripped:
            self._close(next_start)

    def _close(self, end: int) -> None:
        """Finish the block that runs up to `end`, unless it is only blank lines (they join the next)."""
        block = self.text[self._block_start:end]
        if block.strip():
            self._ready.append(block)
            self._block_start = end
