"""The login page, its completion route and logout (shared mode)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import app, ui

from app import auth
from app.context import Lantern
from app.gate import COOKIE
from services.accounts.service import Accounts, digest
from services.core.errors import LanternError

TICKET_SECONDS = 30.0


@dataclass
class Ticket:
    """A one-time hand-over from the login page (websocket) to a cookie (HTTP), for the browser that logged in."""

    token: str
    target: str
    expires: float
    browser: str | None  # NiceGUI's signed per-browser id: a ticket planted in another browser is refused


def register(lantern: Lantern, accounts: Accounts | None) -> None:
    """The /login page and the /login/complete and /logout routes."""
    tickets: dict[str, Ticket] = {}

    @ui.page("/login", title="Lantern · Log in")
    def login_page(next: str = "/") -> None:
        ui.add_head_html('<link rel="stylesheet" href="static/lantern.css">')  # relative: works under a root path
        ui.dark_mode(None)
        with ui.column().classes("absolute-center items-center gap-4 w-80").mark("login"):
            with ui.row().classes("items-center gap-2"):
                ui.icon("emoji_objects").classes("text-4xl text-primary")
                ui.label("Lantern").classes("text-3xl font-semibold")
            if accounts is None:
                ui.label("This Lantern serves only this computer: no login needed.").classes("text-center")
                ui.link("Open the chat", "/")
                return
            with ui.card().classes("w-full p-6 gap-3"):
                ui.label("Log in").classes("text-xl")
                name = ui.input("Name").props('autofocus autocomplete=username outlined dense').classes("w-full") \
                    .mark("login-name")
                password = ui.input("Password", password=True, password_toggle_button=True) \
                    .props("autocomplete=current-password outlined dense").classes("w-full").mark("login-password")
                error = ui.label().classes("text-negative text-sm").mark("login-error")
                error.visible = False

                async def submit() -> None:
                    error.visible = False
                    try:
                        principal = await accounts.login(name.value or "", password.value or "",
                                                         ui.context.client.ip or "unknown")
                    except LanternError as exc:
                        error.text, error.visible = str(exc), True
                        password.value = ""
                        return
                    ticket = secrets.token_urlsafe(24)
                    tickets[ticket] = Ticket(token=await accounts.start_session(principal), target=safe_target(next),
                                             expires=time.monotonic() + TICKET_SECONDS,
                                             browser=browser_id(ui.context.client.request))
                    ui.navigate.to(f"/login/complete?ticket={ticket}")

                password.on("keydown.enter", submit)
                ui.button("Log in", on_click=submit).props("unelevated color=primary").classes("w-full") \
                    .mark("login-submit")
            ui.label("Accounts are managed by an admin, in Settings or with lantern users.") \
                .classes("text-xs opacity-60 text-center")

    async def accounts_end(token: str) -> None:
        """A ticket presented in the wrong place is burnt with its session."""
        if accounts is not None:
            await accounts.end_session(digest(token))

    @app.get("/login/complete", include_in_schema=False)
    async def complete(request: Request, ticket: str = "") -> RedirectResponse:
        """Set the session cookie for a fresh login ticket, then go where the person was going."""
        found = tickets.pop(ticket, None)
        for key in [k for k, t in tickets.items() if t.expires < time.monotonic()]:
            tickets.pop(key, None)
        root = request.scope.get("root_path", "")
        # Login CSRF: a ticket only completes in the browser that asked for it, navigating from this site.
        if found is None or found.expires < time.monotonic() or found.browser is None or \
                found.browser != browser_id(request) or \
                request.headers.get("sec-fetch-site", "same-origin") != "same-origin":
            if found is not None:
                await accounts_end(found.token)
            return RedirectResponse(f"{root}/login", status_code=303)
        response = RedirectResponse(root + found.target, status_code=303)
        response.set_cookie(COOKIE, found.token, max_age=int(lantern.settings.session_hours * 3600),
                            path=root or "/", httponly=True, samesite="lax", secure=request.url.scheme == "https")
        return response

    @app.get("/logout", include_in_schema=False)
    async def logout(request: Request) -> RedirectResponse:
        """End this browser's session and go to the login page."""
        token = request.cookies.get(COOKIE)
        if token and accounts is not None:
            await accounts.end_session(digest(token))
        root = request.scope.get("root_path", "")
        response = RedirectResponse(f"{root}/login", status_code=303)
        response.delete_cookie(COOKIE, path=root or "/")
        response.headers["Clear-Site-Data"] = '"cache"'
        return response

    del login_page, complete, logout  # registered by the decorators


def safe_target(target: str) -> str:
    """Only paths inside this app (no `//host` or scheme) are followed after login."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or target.startswith("/login"):
        return "/"
    return quote(target, safe="/?=&%-_.~")


def browser_id(request: Request | None) -> str | None:
    """NiceGUI's per-browser id from its signed session cookie (set on every request once a storage secret is)."""
    if request is None or "session" not in request.scope:
        return None
    found = request.session.get("id")
    return str(found) if found else None


def logged_in_name() -> str | None:
    """The current user's name in shared mode (for the header), else None."""
    return auth.current_principal().name if auth.shared() else None
