"""Refuses what must never reach a Lantern that serves one local user with no login (pure ASGI).

On loopback without `LANTERN_REQUIRE_LOGIN`, whoever connects is taken for the person at this machine.
- A reverse proxy on the same host connects from loopback too, so everyone who can reach the proxy would
  be that person, with their conversations, runs and provider keys. Proxies say that they forwarded a
  request; a browser or script on this machine never does.
- DNS rebinding: a web page at evil.example can point its own name at 127.0.0.1 and then read this app
  as "same origin". Its requests still name evil.example in the Host header, so only loopback names (and
  LANTERN_ALLOWED_HOSTS) are answered.
Installed only when login is off.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from starlette.responses import PlainTextResponse, Response

from app.api.errors import error_response
from app.gate import route_path

log = logging.getLogger(__name__)

MESSAGE = ("Lantern is serving one local user with no login, but this request came through a proxy, so anyone "
           "who can reach the proxy would be that user. Set LANTERN_REQUIRE_LOGIN=1 and create accounts with "
           "`lantern users add NAME --admin` (see docs/DEPLOY.md).")
HOST_MESSAGE = ("This Lantern serves one local user with no login, so it answers only to this machine's own "
                "names (localhost, 127.0.0.1), not to '{host}': a web page can point its own name at this "
                "machine to read it. If you use that name on purpose, add it to LANTERN_ALLOWED_HOSTS.")
# What reverse proxies add by default or in their documented setups: nginx (our snippet: X-Forwarded-For,
# X-Forwarded-Proto; often X-Real-IP), Caddy and Traefik (X-Forwarded-For/-Proto/-Host, Traefik also
# X-Real-Ip), Apache mod_proxy (X-Forwarded-For/-Host), HAProxy `option forwardfor`, and RFC 7239's
# Forwarded. Not Via: forward proxies and caches on the browser's side add it too, and nginx does not.
FORWARDING_HEADERS = frozenset({b"forwarded", b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto",
                                b"x-real-ip"})
OPEN = {"/health"}  # a load balancer's probe holds no data and should not read as an outage


class ProxyGuard:
    """Answers 403 (or closes the websocket) to proxied requests and to requests naming a foreign host."""

    def __init__(self, app: Any, allowed_hosts: list[str] | None = None) -> None:
        self.app = app
        self.allowed_hosts = {h.lower() for h in allowed_hosts or []}
        self.warned = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or route_path(scope) in OPEN:
            await self.app(scope, receive, send)
            return
        if _forwarded(scope):
            kind, message = "proxied_without_login", MESSAGE
            if not self.warned:  # once: the log tells whoever runs it, without one line per request
                log.warning(MESSAGE)
                self.warned = True
        elif (host := _host_name(scope)) is not None and not self._local(host):
            kind, message = "forbidden", HOST_MESSAGE.format(host=host[:100])
        else:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # before accepting: the client sees 403
            return
        await _refusal(route_path(scope), kind, message)(scope, receive, send)

    def _local(self, host: str) -> bool:
        """Whether a Host name can only mean this machine (or was allowed by name)."""
        if host == "localhost" or host.endswith(".localhost") or host in self.allowed_hosts:
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


def _forwarded(scope: dict[str, Any]) -> bool:
    """Whether a proxy forwarded this request (uvicorn's proxy-header support reads them but leaves them)."""
    return any(name in FORWARDING_HEADERS for name, _ in scope.get("headers", []))


def _host_name(scope: dict[str, Any]) -> str | None:
    """The host name the request was addressed to, without port or IPv6 brackets; None without a Host header."""
    raw = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), None)
    if raw is None:
        return None
    raw = raw.strip().lower()
    if raw.startswith("["):
        return raw[1:].partition("]")[0]
    return raw.rpartition(":")[0] if raw.count(":") == 1 else raw


def _refusal(path: str, kind: str, message: str) -> Response:
    """The API's error shape for /api/, plain text for a person's browser."""
    response: Response
    if path.startswith("/api/"):
        response = error_response(403, kind, message)
    else:
        response = PlainTextResponse(message, status_code=403)
    response.headers["Cache-Control"] = "no-store"
    return response
