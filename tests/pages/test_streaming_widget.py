"""The streaming markdown widget: contiguous blocks, fence hints, and what a person reads."""

from __future__ import annotations

import random
import re

from nicegui import ui
from nicegui.testing import User

from bench.stream_browser import make_reply
from components.blocks import BlockSplitter
from components.render import fence_hints, utf16_len
from components.streaming_markdown import StreamingMarkdown


def test_blocks_add_up_to_the_text_however_it_is_chunked() -> None:
    """The browser slices finished blocks off its copy of the text by length: nothing may be skipped."""
    text = make_reply(800) + "\n\n\n```\nunclosed\n\n"
    rng = random.Random(7)
    splitter, taken, i = BlockSplitter(), [], 0
    while i < len(text):
        n = rng.randint(1, 40)
        splitter.feed(text[i:i + n])
        i += n
        taken += splitter.take_blocks()
        assert "".join(taken) + splitter.tail == splitter.text
    assert "".join(taken + splitter.finish()).rstrip() == text.rstrip()
    assert all(block.strip() for block in taken)


def test_fence_hints_cover_the_code_in_utf16_units() -> None:
    block = '```python\n\ndef f():\n    return "😀"\n```\n'
    (hint,) = fence_hints(block)
    assert isinstance(hint, str)
    runs = hint.split(" ")
    total = sum(int(re.match(r"\d*", run)[0] or 1) for run in runs)  # type: ignore[index]
    assert total == utf16_len('def f():\n    return "😀"\n')
    assert "" in runs and "nf" in runs  # a length of 1 is left out: a space, the name `f`
    assert "k" in hint.split(" ")[0]  # `def` is a keyword
    assert fence_hints("```nosuchlang\nx\n```\n") == [None]
    assert fence_hints("```\nplain\n```\n") == [None]
    assert fence_hints("no code here\n") == []


async def test_streamed_text_reads_whole_and_a_reload_shows_it(user: User) -> None:
    text = make_reply(300)

    @ui.page("/widget")
    async def widget_page() -> None:
        body = StreamingMarkdown(live=True)
        for k in range(0, len(text), 9):
            body.append(text[k:k + 9])
        await body.finish()
        again = StreamingMarkdown(live=False)
        await again.load(text, live=False)

    await user.open("/widget")
    bodies = list(user.find(StreamingMarkdown).elements)
    assert [b.text for b in bodies] == [text, text]
    await user.should_see("Section 1: notes on light")
