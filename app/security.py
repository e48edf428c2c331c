"""Security headers on every response (pure ASGI, so streams pass through untouched)."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

# What NiceGUI 3 needs, and no more (issue #16):
# - script-src keeps 'unsafe-eval': the page's Vue is the full build, which compiles component templates
#   (NiceGUI's and ours, components/*.js) with `new Function`; NiceGUI evaluates every `:prop` with
#   `new Function`/`eval` and runs `run_javascript` code (our stream relay too) and JS event handlers with
#   `eval` (static/nicegui.js). Without it the page stays blank ("Evaluating a string as JavaScript
#   violates ... 'unsafe-eval'"). So user text must never become a `:prop` (components/buttons.py).
# - script-src keeps 'unsafe-inline': NiceGUI's page template starts the app from inline scripts, and
#   offers no nonce; our relay is inline too (app/pages/frame.py). script-src-attr 'none' still refuses
#   inline event-handler attributes, should HTML ever slip into the page: neither NiceGUI nor Vue uses them.
# - connect-src 'self': the page talks to its own origin only; browsers count its same-origin ws:/wss:
#   socket as 'self' (CSP 3), so no other host can be reached by fetch, XHR, WebSocket or EventSource.
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; script-src-attr 'none'; "
       "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
# Only over HTTPS: sent over plain HTTP it is ignored at best, and a loopback or intranet Lantern is plain HTTP.
# The scheme is https when TLS ends here or a trusted proxy says so (uvicorn's X-Forwarded-Proto handling).
HSTS = (b"strict-transport-security", b"max-age=31536000")


class SecurityHeaders:
    """Adds the headers above to HTTP responses that do not set them already."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [*HEADERS, HSTS] if scope.get("scheme") == "https" else HEADERS

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in headers if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, send_with_headers)
