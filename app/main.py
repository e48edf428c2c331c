"""Assemble the app: routes, pages, static files and lifecycle, bound to one `Lantern`."""

from __future__ import annotations

from pathlib import Path

from fastapi.responses import PlainTextResponse
from nicegui import app

from app import auth
from app.api import errors
from app.api.chat_routes import build_chat_router
from app.api.conversation_routes import build_conversation_router
from app.api.docs_routes import build_docs_router
from app.api.openai_routes import build_openai_router
from app.api.run_routes import build_run_router
from app.api.service_routes import build_service_router
from app.api.studio_routes import build_studio_router
from app.api_lane import open_api_lane
from app.body_limit import BodyLimit
from app.context import Lantern
from app.gate import AuthGate
from app.origins import SameOrigin
from app.pages import chat, duet, history, login, pipelines, settings_page, studio
from app.proxy_guard import ProxyGuard
from app.security import SecurityHeaders
from app.socket_guard import SocketGuard
from components.render import highlight_css

STATIC = Path(__file__).parent / "static"


def build(lantern: Lantern) -> None:
    """Register everything on NiceGUI's app (FastAPI underneath)."""
    app.add_static_files("/static", STATIC)
    css = highlight_css()
    app.add_api_route("/lantern/highlight.css", lambda: PlainTextResponse(css, media_type="text/css"),
                      include_in_schema=False)
    errors.install(app)
    # Inside the security headers: a body too large (413) or stalled (408).
    app.add_middleware(BodyLimit, max_bytes=lantern.settings.max_body_bytes, seconds=lantern.settings.body_timeout)
    shared = lantern.settings.shared
    auth.enforce(lantern.accounts if shared else None)
    if shared:  # added before SecurityHeaders, so refusals and redirects carry the headers too
        replica = lantern.runs.replica
        app.add_middleware(AuthGate, accounts=lantern.accounts, limits=replica.limits if replica else None)
    else:  # one local user: a request through a proxy would make everyone behind it that user
        app.add_middleware(ProxyGuard, allowed_hosts=lantern.settings.allowed_hosts)
    if lantern.settings.cors_origins:  # off unless an allow-list is configured
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=lantern.settings.cors_origins,
                           allow_methods=["GET", "POST", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "Last-Event-ID"])
    app.add_middleware(SameOrigin, cors_origins=lantern.settings.cors_origins)  # inside: refusals get the headers
    app.add_middleware(SecurityHeaders)
    # Our routers have no lifespan of their own, yet FastAPI nests the app's lifespan in a merged one per
    # include: on NiceGUI's one app, built again for every page test, the nesting grew past Python's limit.
    lifespan = app.router.lifespan_context
    for router in (build_service_router(lantern), build_chat_router(lantern), build_conversation_router(lantern),
                   build_run_router(lantern), build_studio_router(lantern), build_docs_router(app),
                   build_openai_router(lantern)):  # /v1 last: it ends in a catch-all for unknown /v1 routes
        app.include_router(router)
    app.router.lifespan_context = lifespan
    errors.install_not_found(app)  # after every API route
    chat.register(lantern)
    duet.register(lantern)
    pipelines.register(lantern)
    studio.register(lantern)
    history.register(lantern)
    login.register(lantern, lantern.accounts if shared else None)
    settings_page.register(lantern)
    guard = SocketGuard(lantern.accounts if shared else None, lantern.settings.cors_origins)
    guard.install()
    app.on_startup(guard.start)
    app.on_startup(lambda: open_api_lane(app))  # NiceGUI adds its middlewares in ui.run, after this
    app.on_startup(lantern.startup)
    app.on_shutdown(lantern.shutdown)
