"""Addresses of the app's own routes as the browser must ask for them, behind a reverse proxy's path prefix.

NiceGUI already prefixes what it sends to the browser itself: `ui.link`, `ui.navigate.to` and
`ui.download` targets that start with `/`, and its own assets and socket. Raw HTML (`<link href>`),
`history.replaceState` and server-side redirects are not prefixed: build those with `url()`.
"""

from __future__ import annotations

from urllib.parse import quote

from nicegui import context


def url(path: str) -> str:
    """`path` (absolute inside the app, e.g. `/static/lantern.css`) with the current page's prefix."""
    return prefix() + path


def prefix() -> str:
    """The same prefix NiceGUI gives its own assets: `X-Forwarded-Prefix` + the ASGI root path (`LANTERN_ROOT_PATH`)."""
    try:
        request = context.client.request
    except RuntimeError:  # no page request (e.g. a test client without one): the app is at the root
        return ""
    forwarded = quote(request.headers.get("X-Forwarded-Prefix", ""), safe="/:@!$&'()*+,;=%")
    return forwarded + str(request.scope.get("root_path", ""))
