"""Time limits on reading a request, so slow or stalled clients (slowloris) cannot hold connections open.

uvicorn only times out idle keep-alive connections: a connection that opens and sends nothing, or sends
its headers a byte at a time, or declares a body and never sends it, is kept forever. Two limits:

- **headers** (`HeaderDeadline`, uvicorn's HTTP protocol): the request line and headers must be complete
  within `LANTERN_HEADER_TIMEOUT` seconds of the connection opening or of the previous response
  finishing; otherwise the connection is closed.
- **body** (`BodyDeadline`, pure ASGI): while a body is still due, each piece must come within
  `LANTERN_BODY_TIMEOUT` seconds of the last; otherwise the client gets 408 and the connection closes.

Only reading the request is timed: a response may stream for as long as it likes (SSE), and a websocket,
once upgraded, belongs to another protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.api.errors import error_response

Scope = dict[str, Any]


def header_deadline(seconds: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol with this header timeout, for `ui.run(http=...)`."""
    return type("HeaderDeadlineProtocol", (HeaderDeadline,), {"header_timeout": seconds})


# httptools' protocol is the one uvicorn picks itself: NiceGUI requires uvicorn[standard], which brings httptools.
class HeaderDeadline(HttpToolsProtocol):
    """Closes a connection whose request headers are not complete within `header_timeout` seconds."""

    header_timeout = 10.0
    _deadline: asyncio.TimerHandle | None = None
    _waiting_after: object = None  # the request cycle that was current when the wait began

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._stop_if_headers_came()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.cycle.response_complete:  # nothing pipelined started: the next request's headers are due
            self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop()
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        """Start the clock for the next request's headers."""
        self._stop()
        self._waiting_after = self.cycle
        self._deadline = self.loop.call_later(self.header_timeout, self._headers_overdue)

    def _stop_if_headers_came(self) -> None:
        """Headers are complete once a new request cycle exists, or the connection became a websocket."""
        if self._deadline is not None and (self.cycle is not self._waiting_after
                                           or self.transport.get_protocol() is not self):
            self._stop()

    def _stop(self) -> None:
        """Stop the clock."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_overdue(self) -> None:
        """Hang up: the client took too long to say what it wants."""
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


class BodyStalled(Exception):
    """Raised from `receive` when no piece of the body came in time."""


class BodyDeadline:
    """Answers 408 to an HTTP request whose body stalls for `seconds` between pieces."""

    def __init__(self, app: Any, seconds: float = 15.0) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = False
        stalled = False
        started = False

        async def timed_receive() -> dict[str, Any]:
            nonlocal body_done, stalled
            if body_done:  # e.g. a stream waiting for the client to leave: not timed
                return await receive()
            try:
                async with asyncio.timeout(self.seconds):
                    message: dict[str, Any] = await receive()
            except TimeoutError:
                stalled = True
                raise BodyStalled from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal started
            # Whatever the app made of the missing body (FastAPI: a 400), the client hears 408.
            if stalled and not started:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(BodyStalled):  # the app let our signal through: answer below
            await self.app(scope, timed_receive, guarded_send)
        if stalled and not started:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Any, send: Any) -> None:
        """The 408 response, in the API's error shape; the connection is not reused."""
        response = error_response(408, "request_timeout", (
            f"The request body stopped arriving: nothing came for {self.seconds:g} s (LANTERN_BODY_TIMEOUT). "
            "Send the request again"))
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
