"""The SSE writer every stream uses: ids, event names, JSON data, keepalive, proxy-safe headers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Protocol

from fastapi.responses import StreamingResponse
from nicegui.server import Server

from services.core.events import Event

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}
POLL_S = 1.0  # how often a quiet stream checks whether the server is shutting down


def sse_response(source: EventSource, *, keepalive_s: float = 15.0) -> StreamingResponse:
    """A `text/event-stream` response of numbered events."""
    return StreamingResponse(sse_frames(source, keepalive_s=keepalive_s),
                             media_type="text/event-stream", headers=HEADERS)


class EventSource(Protocol):
    """Numbered events in batches (a run's `Follower`): [] when `timeout` passes quietly, None at the end."""

    async def next(self, timeout: float | None = None) -> list[tuple[int, Event]] | None:
        """The events not read yet."""
        ...


def frame(seq: int, event: Event) -> str:
    """One SSE frame."""
    return f"id: {seq}\nevent: {event.type}\ndata: {json.dumps(event.to_data(), ensure_ascii=False)}\n\n"


async def sse_frames(source: EventSource, *, keepalive_s: float) -> AsyncIterator[str]:
    """One chunk per batch of events, and a comment line whenever the stream is quiet for `keepalive_s`.

    Under load a batch holds several events, so each chunk, not each token, pays for the trip through the
    middleware and the socket; waiting needs no helper task and no queue.
    """
    wait = min(POLL_S, keepalive_s)
    quiet = 0.0
    while (batch := await source.next(timeout=wait)) is not None:
        if batch:
            quiet = 0.0
            yield "".join([frame(seq, event) for seq, event in batch])
        elif (quiet := quiet + wait) >= keepalive_s and not shutting_down():
            quiet = 0.0
            yield ": keepalive\n\n"
        if shutting_down():  # end cleanly: clients resume with Last-Event-ID after the restart
            return


def shutting_down() -> bool:
    """Whether the server has been asked to exit (SIGTERM): open streams should end, not be killed."""
    server = getattr(Server, "instance", None)
    return bool(server is not None and server.should_exit)
