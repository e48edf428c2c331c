"""The SSE writer every stream uses: ids, event names, JSON data, keepalive, proxy-safe headers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse
from nicegui.server import Server

from services.events import Event

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}
POLL_S = 1.0  # how often a quiet stream checks whether the server is shutting down


def sse_response(events: AsyncIterator[tuple[int, Event]], *, keepalive_s: float = 15.0) -> StreamingResponse:
    """A `text/event-stream` response of numbered events."""
    return StreamingResponse(sse_frames(events, keepalive_s=keepalive_s, batch=True),
                             media_type="text/event-stream", headers=HEADERS)


def frame(seq: int, event: Event) -> str:
    """One SSE frame."""
    return f"id: {seq}\nevent: {event.type}\ndata: {json.dumps(event.to_data(), ensure_ascii=False)}\n\n"


async def sse_frames(events: AsyncIterator[tuple[int, Event]], *, keepalive_s: float,
                     batch: bool = False) -> AsyncIterator[str]:
    """Frames as events arrive, and a comment line whenever the stream is quiet for `keepalive_s`."""
    queue: asyncio.Queue[tuple[int, Event] | None] = asyncio.Queue()

    async def pump() -> None:
        # A separate task so that waiting with a timeout never cancels the event iterator itself.
        try:
            async for item in events:
                await queue.put(item)
        finally:
            await queue.put(None)

    task = asyncio.create_task(pump())
    quiet = 0.0
    try:
        while True:
            try:
                async with asyncio.timeout(min(POLL_S, keepalive_s)):  # no task per wait, unlike wait_for
                    item = await queue.get()
            except TimeoutError:
                if shutting_down():  # end cleanly: clients resume with Last-Event-ID after the restart
                    break
                quiet += min(POLL_S, keepalive_s)
                if quiet >= keepalive_s:
                    quiet = 0.0
                    yield ": keepalive\n\n"
                continue
            quiet = 0.0
            if item is None:
                break
            # With `batch`, events already waiting go out as one chunk: under load each chunk, not each
            # token, pays for the trip through the middleware stack and the socket.
            chunk = [frame(*item)]
            while batch and not queue.empty() and (item := queue.get_nowait()) is not None:
                chunk.append(frame(*item))
            yield "".join(chunk)
            if item is None or shutting_down():
                break
    finally:
        task.cancel()


def shutting_down() -> bool:
    """Whether the server has been asked to exit (SIGTERM): open streams should end, not be killed."""
    server = getattr(Server, "instance", None)
    return bool(server is not None and server.should_exit)
