"""The SSE writer: numbered frames, one chunk per batch, and a keepalive comment whenever the stream is quiet."""

from __future__ import annotations

import asyncio

from app.api.sse import sse_frames
from services.core.events import Done, Event, TextDelta


class Script:
    """An event source that hands out scripted batches; a pause is waited out in `timeout`-long quiet steps."""

    def __init__(self, *steps: list[tuple[int, Event]] | float) -> None:
        self.steps = list(steps)
        self.calls = 0

    async def next(self, timeout: float | None = None) -> list[tuple[int, Event]] | None:
        self.calls += 1
        if not self.steps:
            return None
        step = self.steps[0]
        if isinstance(step, float):
            if timeout is not None and step > timeout:  # quiet for the whole wait
                await asyncio.sleep(timeout)
                self.steps[0] = step - timeout
                return []
            await asyncio.sleep(step)  # what follows the pause arrives within this wait
            self.steps.pop(0)
            return await self.next(timeout)
        return self.steps.pop(0)


async def test_quiet_streams_get_keepalives_and_frames_stay_intact() -> None:
    source = Script([(1, TextDelta(delta="Hel"))], 0.25,
                    [(2, TextDelta(delta="lo\nthere")), (3, Done(status="completed", run_id="r1"))])
    frames = [f async for f in sse_frames(source, keepalive_s=0.1)]
    assert frames[0] == 'id: 1\nevent: text.delta\ndata: {"delta": "Hel"}\n\n'
    assert frames[1:3] == [": keepalive\n\n", ": keepalive\n\n"]
    # Events that were ready together go out as one chunk; each keeps its own frame.
    assert frames[3] == ('id: 2\nevent: text.delta\ndata: {"delta": "lo\\nthere"}\n\n'  # newline escaped in JSON
                         'id: 3\nevent: done\ndata: {"status": "completed", "run_id": "r1"}\n\n')
    assert len(frames) == 4


async def test_a_client_that_leaves_stops_reading_the_run() -> None:
    source = Script(*([[(n, TextDelta(delta="x"))] for n in range(1, 1000)]))
    stream = sse_frames(source, keepalive_s=1)
    assert (await anext(stream)).startswith("id: 1")
    await stream.aclose()
    calls = source.calls
    await asyncio.sleep(0.05)
    assert source.calls == calls == 1  # nothing is read after the client went away
