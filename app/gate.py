"""The login gate of shared mode (pure ASGI, so streams pass through untouched).

Every route needs a login except the few listed in PUBLIC: the health probe, the login
page and its completion, and static assets that hold no data. Browsers carry a session
cookie; scripts use HTTP Basic or a personal API token (`Authorization: Bearer lt_...`).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any
from urllib.parse import quote

from nicegui import __version__ as nicegui_version
from starlette.responses import RedirectResponse

from app import auth
from app.api.errors import lantern_error_response
from app.api.openai_shapes import lantern_error as openai_error_response
from services.accounts.service import Accounts, Principal
from services.core.errors import NotAuthenticated, RateLimited
from services.core.limits import SlidingWindow
from services.core.shared_limits import LimitSync

COOKIE = "lantern_session"
LOGIN_PAGES_PER_MINUTE = 60
SCRIPT_PREFIXES = ("/api/", "/v1/", "/openapi.json", "/docs")  # where Basic and Bearer credentials count
NO_STORE = {"Cache-Control": "no-store"}
# Path → why it is open. NiceGUI's asset routes (see _nicegui_asset) and socket carry no data: a page's
# socket joins a client that only an authenticated page request could have created.
PUBLIC_PATHS = {
    "/health": "liveness probe for load balancers",
    "/login": "the login page",
    "/login/complete": "turns a one-time login ticket into a session cookie",
    "/logout": "ends the session, if any",
    "/lantern/highlight.css": "code highlighting styles",
    "/favicon.ico": "icon",
}
# Not "/_nicegui/": anything there that no route matches gets NiceGUI's 404 *page*, a whole Client built
# for whoever asks (~70 KiB of memory each); only the exact asset route shapes are open (_nicegui_asset).
PUBLIC_PREFIXES = ("/_nicegui_ws/", "/static/")
# The routes of nicegui/nicegui.py for the installed version, each with every part its route requires:
# whatever matches reaches that route, whose misses are a small JSON 404, never the 404 page. Left to the
# login: /_nicegui/auto/... (files and media a page hands out, maybe a user's) and /_nicegui/client/...
# (uploads). dynamic_resources are CSS that an element type generates (ui.markdown's code highlighting).
NICEGUI_ASSET = re.compile(rf"/_nicegui/{re.escape(nicegui_version)}/(?:(?:static|libraries|components)/.+"
                           r"|(?:resources|esm)/[^/]+/.+|dynamic_resources/[^/]+)")


def is_public(path: str) -> bool:
    """Whether a route may be reached without a login."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES) or _nicegui_asset(path)


class AuthGate:
    """Resolves the principal of each request; refuses or redirects requests without one."""

    def __init__(self, app: Any, accounts: Accounts, limits: LimitSync | None = None) -> None:
        self.app = app
        self.accounts = accounts
        # The login page is the one page built for anybody, and each build is a NiceGUI client held for a
        # minute: anonymous builds are counted per address (by every replica together, in replica mode).
        self.login_pages = SlidingWindow(LOGIN_PAGES_PER_MINUTE)
        if limits is not None:
            limits.share("login-pages", self.login_pages)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        try:
            principal = await self._principal(scope)
        except RateLimited as exc:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 4429})
            else:
                await lantern_error_response(exc, **NO_STORE)(scope, receive, send)
            return
        except NotAuthenticated as exc:
            principal, failure = None, exc
        else:
            failure = NotAuthenticated("Log in first: use the login page, HTTP Basic, or an API token.")
        if principal is None and path == "/login" and scope["type"] == "http" and scope.get("method") == "GET":
            try:
                self.login_pages.take(_address(scope), "login page loads from your address")
            except RateLimited as exc:
                await lantern_error_response(exc, **NO_STORE)(scope, receive, send)
                return
        if principal is None and not is_public(path):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 4401})
            elif _wants_page(scope, path):
                await _to_login(scope, path)(scope, receive, send)
            else:  # /v1 answers in OpenAI's shape, so its SDKs raise AuthenticationError
                refuse = openai_error_response if path.startswith("/v1/") else lantern_error_response
                await refuse(failure, **NO_STORE, **{
                    "WWW-Authenticate": 'Basic realm="Lantern", charset="UTF-8"'})(scope, receive, send)
            return
        scope.setdefault("state", {})[auth.SCOPE_KEY] = principal
        auth.bind(principal)
        await self.app(scope, receive, send)

    async def _principal(self, scope: dict[str, Any]) -> Principal | None:
        """From the Authorization header (script routes only), else the session cookie; None without either.

        Pages and their sockets run on browser logins only: a browser that remembers Basic credentials (or a
        token) would otherwise hold a page whose login nothing could end.
        """
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        header = headers.get("authorization", "") if route_path(scope).startswith(SCRIPT_PREFIXES) else ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            principal = await self.accounts.from_token(value.strip())
            if principal is None:
                raise NotAuthenticated("That API token is unknown or revoked.")
            return principal
        if scheme.lower() == "basic":
            name, password = _basic(value)
            return await self.accounts.from_basic(name, password, _address(scope))
        token = _cookie(headers.get("cookie", ""), COOKIE)
        return await self.accounts.from_session(token) if token else None


def route_path(scope: dict[str, Any]) -> str:
    """The path inside the app, without a reverse proxy's root path."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root):] or "/" if root and path.startswith(root) else path


def _basic(value: str) -> tuple[str, str]:
    """Decode HTTP Basic credentials."""
    try:
        name, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise NotAuthenticated("Malformed Basic credentials.") from None
    return name, password


def _cookie(header: str, name: str) -> str | None:
    """One cookie's value."""
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


def _address(scope: dict[str, Any]) -> str:
    """The client's address (for throttling failed logins)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _wants_page(scope: dict[str, Any], path: str) -> bool:
    """A browser navigating to a page (gets the login page) rather than a script (gets 401)."""
    if scope.get("method") != "GET" or path.startswith(("/api/", "/v1/")):
        return False
    accept = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == b"accept"), "")
    return "text/html" in accept or not accept or accept == "*/*"


def _to_login(scope: dict[str, Any], path: str) -> RedirectResponse:
    """303 to the login page, remembering where the person was going."""
    query = scope.get("query_string", b"").decode("latin-1")
    target = path + (f"?{query}" if query else "")
    return RedirectResponse(f"{scope.get('root_path', '')}/login?next={quote(target, safe='')}", status_code=303,
                            headers=NO_STORE)


def _nicegui_asset(path: str) -> bool:
    """Whether `path` has the shape of one of NiceGUI's asset routes: files and generated code, no data, no Client."""
    return NICEGUI_ASSET.fullmatch(path) is not None
