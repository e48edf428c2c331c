"""Who is asking: the one local user on loopback, the logged-in account in shared mode.

The gate (app/gate.py) resolves each HTTP request's principal into a context variable; page
event handlers, which arrive over the websocket, use the principal of the request that built
the page, re-checked so a logout or password change ends open pages too.
"""

from __future__ import annotations

from contextvars import ContextVar

from services.accounts.service import LOCAL, Accounts, Principal
from services.core.errors import NotAuthenticated

SCOPE_KEY = "lantern_principal"
_principal: ContextVar[Principal | None] = ContextVar(SCOPE_KEY, default=None)
_accounts: list[Accounts] = []  # the accounts of the built app in shared mode; empty on loopback


def enforce(accounts: Accounts | None) -> None:
    """Turn shared mode on (with these accounts) or off, for the app being built."""
    _accounts[:] = [accounts] if accounts is not None else []


def shared() -> bool:
    """Whether logins are enforced."""
    return bool(_accounts)


def bind(principal: Principal | None) -> None:
    """Set the principal of the current request (the gate does this)."""
    _principal.set(principal)


def current_principal() -> Principal:
    """The user of the current request or page, or NotAuthenticated in shared mode."""
    if not _accounts:
        return LOCAL
    principal = _principal.get() or _page_principal()
    if principal is None:
        raise NotAuthenticated("Please log in.")
    if not _accounts[0].session_alive(principal):
        raise NotAuthenticated("Your login has ended: reload the page to log in again.")
    return principal


def current_user_id() -> str:
    """The id of the user of the current page or request."""
    return current_principal().user_id


def _page_principal() -> Principal | None:
    """The principal stored on the request that built the current page, if in a page context."""
    from nicegui import context

    try:
        request = context.client.request
    except (RuntimeError, AttributeError):
        return None
    found = request.scope.get("state", {}).get(SCOPE_KEY)
    return found if isinstance(found, Principal) else None
