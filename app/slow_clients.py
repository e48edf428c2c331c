"""A time limit on request headers, so slow clients (slowloris) cannot hold connections open.

uvicorn only times out idle keep-alive connections: a connection that opens and sends nothing, or sends
its headers a byte at a time, is kept forever. Here (uvicorn's HTTP protocol) the request line and
headers must be complete within `LANTERN_HEADER_TIMEOUT` seconds of the connection opening or of the
previous response finishing; otherwise the connection is closed. A body that stalls is app/body_limit.py's.

Only reading the request is timed: a response may stream for as long as it likes (SSE), and a websocket,
once upgraded, belongs to another protocol.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


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
