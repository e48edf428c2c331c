"""A lane for `/api/` and `/v1/` requests that skips NiceGUI's page middlewares (issue #9).

NiceGUI wraps every request in three `BaseHTTPMiddleware` layers (request tracking for `app.storage`,
prefixed redirects, cache headers for its own assets) and a session middleware. None of them does
anything for the API, but a `BaseHTTPMiddleware` relays each chunk of a response through a memory
stream and a task switch: with 50 SSE clients that was a large share of the event loop. API requests
take a stack built from the same middleware list without those layers; everything else is unchanged.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

API_PREFIX = ("/api/", "/v1/")  # Lantern's API and its OpenAI-compatible endpoint


class ApiLane:
    """Sends `/api/` and `/v1/` HTTP requests through the lean stack and all else through the full one."""

    def __init__(self, full: ASGIApp, lean: ASGIApp) -> None:
        self.full = full
        self.lean = lean

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self.lean if scope["type"] == "http" and scope["path"].startswith(API_PREFIX) else self.full
        await lane(scope, receive, send)


def open_api_lane(app: Starlette) -> None:
    """Rebuild the app's middleware stack as an `ApiLane` (call once the middleware list is final)."""
    full = app.build_middleware_stack()
    kept = app.user_middleware
    app.user_middleware = [m for m in kept if not _page_only(m.cls)]
    try:
        lean = app.build_middleware_stack()
    finally:
        app.user_middleware = kept
    app.middleware_stack = ApiLane(full, lean)


def _page_only(cls: Any) -> bool:
    """NiceGUI's layers: its BaseHTTPMiddleware subclasses and the session behind `app.storage`."""
    return cls is SessionMiddleware or (isinstance(cls, type) and issubclass(cls, BaseHTTPMiddleware)
                                        and cls.__module__.startswith("nicegui."))
