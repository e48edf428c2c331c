"""A cap on request bodies (pure ASGI): bytes are counted as they stream, so no body is held whole.

A declared `Content-Length` over the cap is refused before the app runs; a chunked body is cut off
at the first byte past the cap. Either way the client gets 413 in the API's error shape, and the
route never sees a body it could half-process.
"""

from __future__ import annotations

import contextlib
from typing import Any

from app.api.errors import error_response

Scope = dict[str, Any]


class BodyTooLarge(Exception):
    """Raised from `receive` once the body has passed the cap."""


class BodyLimit:
    """Answers 413 to HTTP requests whose body exceeds `max_bytes`."""

    def __init__(self, app: Any, max_bytes: int = 1024 * 1024) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        overflowed = False
        started = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal received, overflowed
            if overflowed:
                raise BodyTooLarge
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    overflowed = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal started
            # Whatever the app made of the cut-off body (a parse error, a 400), the client hears 413.
            if overflowed and not started:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(BodyTooLarge):  # the app let our signal through: answer below
            await self.app(scope, counting_receive, guarded_send)
        if overflowed and not started:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Any, send: Any) -> None:
        """The 413 response, in the API's error shape."""
        response = error_response(413, "too_large", (
            f"The request body is larger than this server accepts ({_size(self.max_bytes)}, LANTERN_MAX_BODY_BYTES): "
            "send less, e.g. split the text or attach it in parts"))
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


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
