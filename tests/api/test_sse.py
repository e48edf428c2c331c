"""The SSE writer: numbered frames, and a keepalive comment whenever the stream is quiet."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from app.api.sse import sse_frames
from services.events import Done, Event, TextDelta


async def slow_events() -> AsyncIterator[tuple[int, Event]]:
    yield 1, TextDelta(delta="Hel")
    await asyncio.sleep(0.25)
    yield 2, TextDelta(delta="lo\nthere")
    yield 3, Done(status="completed", run_id="r1")


async def test_quiet_streams_get_keepalives_and_frames_stay_intact() -> None:
    frames = [f async for f in sse_frames(slow_events(), keepalive_s=0.1)]
    assert frames[0] == 'id: 1\nevent: text.delta\ndata: {"delta": "Hel"}\n\n'
    assert frames[1:3] == [": keepalive\n\n", ": keepalive\n\n"]
    assert frames[3] == 'id: 2\nevent: text.delta\ndata: {"delta": "lo\\nthere"}\n\n'  # newline escaped in JSON
    assert frames[-1] == 'id: 3\nevent: done\ndata: {"status": "completed", "run_id": "r1"}\n\n'


async def test_a_client_that_leaves_does_not_leave_the_pump_running() -> None:
    consumed: list[int] = []

    async def endless() -> AsyncIterator[tuple[int, Event]]:
        n = 0
        while True:
            n += 1
            consumed.append(n)
            yield n, TextDelta(delta="x")
            await asyncio.sleep(0.01)

    stream = sse_frames(endless(), keepalive_s=1)
    assert (await anext(stream)).startswith("id: 1")
    await stream.aclose()
    await asyncio.sleep(0.05)
    seen = len(consumed)
    await asyncio.sleep(0.1)
    assert len(consumed) == seen  # nothing is pulled after the client went away
