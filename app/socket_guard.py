"""The page socket: only this site's pages connect, only from the browser that loaded the page, a socket
speaks for its own page, and in shared mode only that page's own user, while their login holds.

NiceGUI's socket.io server takes any Origin and routes each message by the client id the message names.
Here every socket is bound at connect time to the one page (client id) it connected for; messages naming
another page are dropped. In shared mode the connecting request must carry a live login of the user the
page was built for (the gate resolved it into the request scope), and a loop closes the sockets of
logins that end — by logout, expiry, a password change or removal, here or in another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import socketio
from nicegui import background_tasks, core
from nicegui.client import Client

from app.auth import SCOPE_KEY
from app.origins import origin_allowed
from services.accounts.service import Accounts, Principal

log = logging.getLogger("lantern.socket")
SYNC_SECONDS = 1.0  # how soon a login ended in another process (lantern users) closes its pages
# Messages a browser sends about its page; each names its client id.
PAGE_MESSAGES = ("event", "javascript_response", "ack", "log")
# The connect error NiceGUI's browser code answers by reloading: the reload meets the login gate.
RELOAD = "Implicit handshake failed"
_NICEGUI_HANDLERS: dict[str, Callable[..., Any]] = {}  # NiceGUI's own, kept so a rebuilt app (tests) wraps them once


@dataclass(frozen=True)
class Binding:
    """What one socket may speak for."""

    client_id: str
    principal: Principal | None


class SocketGuard:
    """Wraps NiceGUI's socket.io handlers; `accounts` is None when logins are off (loopback)."""

    def __init__(self, accounts: Accounts | None, cors_origins: list[str]) -> None:
        self.accounts = accounts
        self.cors_origins = cors_origins
        self.bindings: dict[str, Binding] = {}
        self._task: asyncio.Task[None] | None = None

    def install(self) -> None:
        """Replace NiceGUI's handlers with checked ones and refuse other sites' origins."""
        sio = core.sio
        # engine.io refuses a connection whose Origin this callable rejects, and sends CORS headers only
        # for those it accepts (NiceGUI's '*' reflected any origin, with credentials).
        sio.eio.cors_allowed_origins = self._origin_ok
        if not _NICEGUI_HANDLERS:
            _NICEGUI_HANDLERS.update(sio.handlers["/"])
        handlers = _NICEGUI_HANDLERS
        sio.on("connect", self._wrap_connect(handlers["connect"]))
        sio.on("handshake", self._wrap_handshake(handlers["handshake"]))
        sio.on("disconnect", self._wrap_disconnect(handlers["disconnect"]))
        for name in PAGE_MESSAGES:
            if name in handlers:
                sio.on(name, self._wrap_message(handlers[name]))

    def start(self) -> None:
        """Begin closing the sockets of ended logins (shared mode)."""
        if self.accounts is not None and self._task is None:
            self._task = background_tasks.create(self._watch_logins(), name="socket-guard")

    def _origin_ok(self, origin: str | None, environ: dict[str, Any]) -> bool:
        """engine.io's origin check: this site, or an allowed one."""
        if origin is None:
            return True
        return origin_allowed(origin, environ.get("HTTP_HOST", ""), environ.get("HTTP_X_FORWARDED_HOST"),
                              self.cors_origins)

    def _wrap_connect(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """Bind the socket to its page, and refuse it unless it may act for that page."""

        async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> Any:
            client_id = _query(environ).get("client_id")
            client = Client.instances.get(client_id) if client_id else None
            if client_id is None or client is None:
                raise socketio.exceptions.ConnectionRefusedError(RELOAD)
            scope = environ.get("asgi.scope", {})
            principal = _scope_principal(scope)
            page_scope = client.request.scope if client.request is not None else {}
            if _browser(page_scope) not in (None, _browser(scope)):
                # Only the browser that loaded the page (NiceGUI's signed per-browser id) may join it: a client
                # id read from a proxy's log is not enough, not even for the login page.
                log.warning("refused a page socket from another browser")
                raise socketio.exceptions.ConnectionRefusedError(RELOAD)
            if self.accounts is not None and not self._may_join(client, principal):
                log.warning("refused a page socket without that page's login")
                raise socketio.exceptions.ConnectionRefusedError(RELOAD)
            self.bindings[sid] = Binding(client_id, principal)
            return await _call(original, sid, environ, auth)

        return connect

    def _may_join(self, client: Client, principal: Principal | None) -> bool:
        """A page built for a user takes only that user's live login; a page built for nobody (login) takes any."""
        owner = _scope_principal(client.request.scope if client.request is not None else {})
        if owner is None:
            return True
        assert self.accounts is not None
        return principal is not None and principal.user_id == owner.user_id and \
            self.accounts.session_alive(principal) and self.accounts.session_alive(owner)

    def _wrap_handshake(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """An explicit handshake must name the page the socket connected for."""

        async def handshake(sid: str, data: Any) -> Any:
            binding = self.bindings.get(sid)
            if binding is None or not isinstance(data, dict) or data.get("client_id") != binding.client_id:
                return False
            return await _call(original, sid, data)

        return handshake

    def _wrap_disconnect(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """Forget the binding."""
        takes_reason = len(inspect.signature(original).parameters) > 1

        async def disconnect(sid: str, *reason: Any) -> Any:
            self.bindings.pop(sid, None)
            return await _call(original, sid, *(reason if takes_reason else ()))

        return disconnect

    def _wrap_message(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """Pass a page message on only for the socket's own page, while its login holds (one check for every
        handler of every page: a click on an open page after logout changes nothing)."""

        async def message(sid: str, msg: Any) -> Any:
            binding = self.bindings.get(sid)
            if binding is None or not isinstance(msg, dict) or msg.get("client_id") != binding.client_id:
                return None
            if self.accounts is not None and binding.principal is not None and \
                    not self.accounts.session_alive(binding.principal):
                await self._close(sid, binding)
                return None
            return await _call(original, sid, msg)

        return message

    async def _watch_logins(self) -> None:
        """Close the pages of logins that end; also notices `lantern users` run in another process."""
        assert self.accounts is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.accounts.changed.wait(), SYNC_SECONDS)
            try:
                sessions = {b.principal.session for b in self.bindings.values()
                            if b.principal is not None and b.principal.session}
                await self.accounts.sync(s for s in sessions if s)
                for sid, binding in list(self.bindings.items()):
                    if binding.principal is not None and not self.accounts.session_alive(binding.principal):
                        await self._close(sid, binding)
            except Exception:  # the watch must outlive a database hiccup
                log.exception("checking open pages' logins failed")
                await asyncio.sleep(SYNC_SECONDS)

    async def _close(self, sid: str, binding: Binding) -> None:
        """End a page whose login ended: its content leaves the server, its browser reloads into the login."""
        self.bindings.pop(sid, None)
        client = Client.instances.get(binding.client_id)
        if client is not None:
            await core.sio.emit("try_reconnect", {}, room=sid)
        await core.sio.disconnect(sid)
        if client is not None and client.id in Client.instances:
            client.delete()


def _scope_principal(scope: Mapping[str, Any]) -> Principal | None:
    """The principal the login gate put into a request's scope."""
    found = scope.get("state", {}).get(SCOPE_KEY)
    return found if isinstance(found, Principal) else None


def _browser(scope: Mapping[str, Any]) -> str | None:
    """NiceGUI's per-browser id, from its signed session cookie, of a page request or a socket."""
    session = scope.get("session")
    found = session.get("id") if isinstance(session, dict) else None
    return str(found) if found else None


def _query(environ: dict[str, Any]) -> dict[str, str]:
    """The socket's query parameters."""
    raw = environ.get("QUERY_STRING") or environ.get("asgi.scope", {}).get("query_string") or ""
    text = raw.decode("latin-1") if isinstance(raw, bytes | bytearray) else str(raw)
    return {k: v[0] for k, v in parse_qs(text).items()}


async def _call(handler: Callable[..., Any], *args: Any) -> Any:
    """Call a socket.io handler, sync or async."""
    result = handler(*args)
    return await result if inspect.isawaitable(result) else result
