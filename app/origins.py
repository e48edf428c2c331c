"""Only this site's own pages may change state with the browser's ambient credentials.

Cookies (and a browser's remembered Basic login) ride along on requests any other page makes: a form
on another port of the same host is even "same-site", so SameSite=Lax does not stop it. Browsers send
`Origin` with every state-changing request, so a request whose Origin is neither this site nor an
allowed one is refused. Scripts sending a Bearer token are not at risk (nothing sends it for them) and
scripts without an Origin are not browsers; both pass.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from app.api.errors import lantern_error_response
from services.core.errors import Forbidden

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# Fetch metadata: what a browser says about where a request came from, when it sends no Origin.
CROSS_SITE = {"cross-site", "same-site"}


class SameOrigin:
    """Refuses state-changing requests and sockets that another site's page made (pure ASGI)."""

    def __init__(self, app: Any, cors_origins: list[str]) -> None:
        self.app = app
        self.cors_origins = cors_origins

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("method") not in SAFE_METHODS and not self._allowed(scope):
            origin = _headers(scope).get("origin") or "another site"
            exc = Forbidden(f"This request came from {origin}; Lantern accepts changes only from its own pages. "
                            "If that is your own front-end, add its origin to LANTERN_CORS_ORIGINS.")
            await lantern_error_response(exc, **{"Cache-Control": "no-store"})(scope, receive, send)
            return
        if scope["type"] == "websocket" and not self._allowed(scope):
            await send({"type": "websocket.close", "code": 4403})
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope: dict[str, Any]) -> bool:
        """Whether this request may act: a Bearer script, this site, an allowed origin, or not a browser."""
        headers = _headers(scope)
        if headers.get("authorization", "").lower().startswith("bearer "):
            return True
        origin = headers.get("origin")
        if origin is None:
            return headers.get("sec-fetch-site") not in CROSS_SITE
        return origin_allowed(origin, headers.get("host", ""), headers.get("x-forwarded-host"), self.cors_origins)


def origin_allowed(origin: str, host: str, forwarded_host: str | None, allowed: list[str]) -> bool:
    """Whether a browser's Origin is this site (as the Host, or a proxy's X-Forwarded-Host, names it) or allowed.

    A forged X-Forwarded-Host cannot help an attacking page: browsers do not let a page set it without a
    CORS preflight, which Lantern does not grant.
    """
    if origin in allowed:
        return True
    if origin == "null":
        return False
    netloc = urlsplit(origin).netloc.lower()
    hosts = {h.strip().lower() for h in (host, *(forwarded_host or "").split(",")) if h.strip()}
    return bool(netloc) and netloc in hosts


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    """Request headers, lower-cased names (the last of repeated ones)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
