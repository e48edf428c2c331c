"""Request bodies, capped in size and in pace (pure ASGI): bytes are counted and timed as they stream,
so no body is held whole and no stalled client holds a connection.

- **size**: a declared `Content-Length` over `max_bytes` is refused before the app runs; a chunked body is
  cut off at the first byte past the cap: 413.
- **pace**: while a body is still due, each piece must come within `seconds` of the last
  (`LANTERN_BODY_TIMEOUT`): 408, and the connection is not reused.

Either way the client gets the API's error shape, and the route never sees a body it could half-process.
Once the body is complete, `receive` is no longer timed: a response may stream as long as it likes (SSE).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from app.api.errors import error_response

Scope = dict[str, Any]
Refusal = Callable[[Scope, Any, Any], Awaitable[None]]


class BodyRefused(Exception):
    """Raised from `receive` once the body is too large or has stalled."""


class BodyLimit:
    """Answers 413 to HTTP requests whose body exceeds `max_bytes`, 408 to those whose body stalls."""

    def __init__(self, app: Any, max_bytes: int = 1024 * 1024, seconds: float = 15.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        received = 0
        body_done = False
        refusal: Refusal | None = None
        started = False

        async def guarded_receive() -> dict[str, Any]:
            nonlocal received, body_done, refusal
            if refusal is not None:
                raise BodyRefused
            if body_done:  # e.g. a stream waiting for the client to leave: not timed
                return await receive()
            try:
                async with asyncio.timeout(self.seconds):
                    message: dict[str, Any] = await receive()
            except TimeoutError:
                refusal = self._stalled
                raise BodyRefused from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refusal = self._too_large
                    raise BodyRefused
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal started
            # Whatever the app made of the cut-off body (a parse error, a 400), the client hears 413 or 408.
            if refusal is not None and not started:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(BodyRefused):  # the app let our signal through: answer below
            await self.app(scope, guarded_receive, guarded_send)
        if refusal is not None and not started:
            await refusal(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Any, send: Any) -> None:
        """The 413 response."""
        await _closing(413, "too_large", (
            f"The request body is larger than this server accepts ({_size(self.max_bytes)}, LANTERN_MAX_BODY_BYTES): "
            "send less, e.g. split the text or attach it in parts"))(scope, receive, send)

    async def _stalled(self, scope: Scope, receive: Any, send: Any) -> None:
        """The 408 response."""
        await _closing(408, "request_timeout", (
            f"The request body stopped arriving: nothing came for {self.seconds:g} s (LANTERN_BODY_TIMEOUT). "
            "Send the request again"))(scope, receive, send)


def _closing(status: int, kind: str, message: str) -> Any:
    """An error response after which the connection is not reused (the rest of the body is not read)."""
    response = error_response(status, kind, message)
    response.headers["Connection"] = "close"
    return response


def _content_length(scope: Scope) -> int | None:
    """The declared body size, if any (an unparsable one is left to the server to refuse)."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _size(n: int) -> str:
    """Bytes as a person reads them."""
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"
