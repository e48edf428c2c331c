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
        self._done: list[str] = []  # text of the blocks already taken (only joined on demand)
        self._lines: list[str] = []  # complete lines of the block being built
        self._partial: list[str] = []  # pieces of the line being written
        self._ready: list[str] = []
        self._fence: str | None = None  # the opening fence marker while inside a code block

    def feed(self, delta: str) -> None:
        """Add streamed text and scan the lines it completes (pieces are kept, never re-copied)."""
        start = 0
        while (cut := delta.find("\n", start)) != -1:
            self._partial.append(delta[start:cut + 1])
            start = cut + 1
            line = "".join(self._partial)
            self._partial.clear()
            self._lines.append(line)
            self._scan_line(line)
        if start < len(delta):
            self._partial.append(delta[start:])

    def take_blocks(self) -> list[str]:
        """Blocks finished since the last call."""
        ready, self._ready = self._ready, []
        return ready

    @property
    def text(self) -> str:
        """Everything fed so far (joined on demand: for display filters and tests)."""
        return "".join(self._done) + self.tail

    @property
    def tail(self) -> str:
        """The text of the block still being written."""
        return "".join(self._lines) + "".join(self._partial)

    def finish(self) -> list[str]:
        """End of stream: every remaining block is final."""
        rest = self.tail
        self._done.append(rest)
        self._lines, self._partial = [], []
        blocks = self.take_blocks()
        return blocks + ([rest] if rest.strip() else [])

    def _scan_line(self, line: str) -> None:
        """Advance the block state machine by one complete line."""
        stripped = line.strip()
        if self._fence is not None:
            if stripped.startswith(self._fence) and stripped.strip(self._fence[0]) == "":
                self._fence = None
                self._close()
            return
        if stripped.startswith(("```", "~~~")):
            marker = stripped[0] * (len(stripped) - len(stripped.lstrip(stripped[0])))
            self._fence = marker
            return
        if not stripped:
            self._close()

    def _close(self) -> None:
        """Finish the block built so far, unless it is only blank lines (they join the next)."""
        block = "".join(self._lines)
        if block.strip():
            self._ready.append(block)
            self._done.append(block)
            self._lines = []
