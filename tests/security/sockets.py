"""A page as an attacker sees it: its client id and buttons from the HTML, and a socket.io client for it."""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import socketio


@dataclass
class Page:
    """A NiceGUI page as served: its client id and the raw element JSON."""

    client_id: str
    html: str

    def click_listener(self, aria_label: str) -> tuple[int, str]:
        """The element id and click listener id of the button with this accessible name."""
        for match in re.finditer(r'"(\d+)":\{"tag":"q-btn","props":\{', self.html):
            chunk = self.html[match.end():match.end() + 3000]
            props_end = chunk.find("},")
            if f'"aria-label":"{aria_label}"' not in chunk[:props_end]:
                continue
            listener = re.search(r'"listener_id":"([^"]+)","type":"click"', chunk)
            assert listener, f"no click listener on {aria_label}"
            return int(match.group(1)), listener.group(1)
        raise AssertionError(f"no button named {aria_label!r} on the page")


def open_page(client: httpx.Client, path: str) -> Page:
    """GET a page the way a browser would and read its client id."""
    response = client.get(path, headers={"Accept": "text/html"})
    assert response.status_code == 200, response.status_code
    found = re.search(r"'client_id': '([0-9a-f-]+)'", response.text)
    assert found, "no client id in the page"
    return Page(found.group(1), response.text)


@dataclass
class PageSocket:
    """A socket.io connection to one page, recording what the server sends."""

    sio: socketio.AsyncClient
    received: list[tuple[str, Any]] = field(default_factory=list)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)

    async def click(self, client_id: str, element_id: int, listener_id: str) -> None:
        """Send a click event naming `client_id`'s page."""
        await self.sio.emit("event", {"id": element_id, "client_id": client_id, "listener_id": listener_id,
                                      "args": []})

    async def close(self) -> None:
        """Disconnect if still connected."""
        if self.sio.connected:
            await self.sio.disconnect()


async def connect(url: str, client_id: str, *, cookie: str | None = None, origin: str | None = None) -> PageSocket:
    """Connect like NiceGUI's browser code (implicit handshake); raises socketio ConnectionError when refused."""
    sio = socketio.AsyncClient(reconnection=False)
    socket = PageSocket(sio)
    sio.on("*", lambda event, data=None: socket.received.append((event, data)))
    sio.on("disconnect", lambda *_: socket.disconnected.set())
    query = urlencode({"client_id": client_id, "next_message_id": 0, "implicit_handshake": "true",
                       "tab_id": uuid.uuid4().hex, "document_id": uuid.uuid4().hex})
    headers = {}
    if cookie:
        headers["Cookie"] = cookie
    if origin:
        headers["Origin"] = origin
    await sio.connect(f"{url}?{query}", headers=headers, transports=["websocket"],
                      socketio_path="/_nicegui_ws/socket.io", wait_timeout=10)
    return socket


def cookie_header(client: httpx.Client) -> str:
    """The Cookie header a browser with this client's cookies would send."""
    return "; ".join(f"{name}={value}" for name, value in client.cookies.items())
