"""Refuses proxied requests while Lantern serves one local user with no login (pure ASGI).

On loopback without `LANTERN_REQUIRE_LOGIN`, whoever connects is taken for the person at this machine.
A reverse proxy on the same host connects from loopback too, so everyone who can reach the proxy would
be that person, with their conversations, runs and provider keys. Proxies say that they forwarded a
request; a browser or script on this machine never does. Installed only when login is off.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.responses import PlainTextResponse, Response

from app.api.errors import error_response
from app.gate import route_path

log = logging.getLogger(__name__)

MESSAGE = ("Lantern is serving one local user with no login, but this request came through a proxy, so anyone "
           "who can reach the proxy would be that user. Set LANTERN_REQUIRE_LOGIN=1 and create accounts with "
           "`lantern users add NAME --admin` (see docs/DEPLOY.md).")
# What reverse proxies add by default or in their documented setups: nginx (our snippet: X-Forwarded-For,
# X-Forwarded-Proto; often X-Real-IP), Caddy and Traefik (X-Forwarded-For/-Proto/-Host, Traefik also
# X-Real-Ip), Apache mod_proxy (X-Forwarded-For/-Host), HAProxy `option forwardfor`, and RFC 7239's
# Forwarded. Not Via: forward proxies and caches on the browser's side add it too, and nginx does not.
FORWARDING_HEADERS = frozenset({b"forwarded", b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto",
                                b"x-real-ip"})
OPEN = {"/health"}  # a load balancer's probe holds no data and should not read as an outage


class ProxyGuard:
    """Answers 403 (or closes the websocket) when a request carries a proxy's forwarding headers."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.warned = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or not _forwarded(scope) or route_path(scope) in OPEN:
            await self.app(scope, receive, send)
            return
        if not self.warned:  # once: the log tells whoever runs it, without one line per request
            log.warning(MESSAGE)
            self.warned = True
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # before accepting: the client sees 403
            return
        await _refusal(route_path(scope))(scope, receive, send)


def _forwarded(scope: dict[str, Any]) -> bool:
    """Whether a proxy forwarded this request (uvicorn's proxy-header support reads them but leaves them)."""
    return any(name in FORWARDING_HEADERS for name, _ in scope.get("headers", []))


def _refusal(path: str) -> Response:
    """The API's error shape for /api/, plain text for a person's browser."""
    response: Response
    if path.startswith("/api/"):
        response = error_response(403, "proxied_without_login", MESSAGE)
    else:
        response = PlainTextResponse(MESSAGE, status_code=403)
    response.headers["Cache-Control"] = "no-store"
    return response
