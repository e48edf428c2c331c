"""PostgreSQL's LISTEN/NOTIFY as the replicas' message bus: no new server, only the database a team already runs.

One listening connection per process receives every channel it subscribed to and hands each payload to its
handlers on the event loop; notifications are sent on a second connection. A lost connection is re-opened
with a growing pause, and the `on_reconnect` handlers run then, because notifications sent while it was down
are gone: whoever waits on them re-reads the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlmodel import Session

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)
Handler = Callable[[str], None]
RECONNECT_S = (0.2, 0.5, 1.0, 2.0, 5.0)  # pauses between attempts to listen again, the last one repeated
MAX_PAYLOAD = 7900  # PostgreSQL refuses a NOTIFY payload of 8,000 bytes or more


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (`postgresql+psycopg://...`) as the plain `postgresql://` libpq takes."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def packed(items: Iterable[str]) -> list[str]:
    """Comma-separated items in as few payloads as fit (an item never split)."""
    payloads: list[str] = []
    for item in items:
        if payloads and len(payloads[-1]) + 1 + len(item) <= MAX_PAYLOAD:
            payloads[-1] += "," + item
        else:
            payloads.append(item)
    return payloads


def notify_in(session: Session, channel: str, payloads: Iterable[str]) -> None:
    """Send notifications from inside a transaction: delivered when it commits, never if it rolls back."""
    for payload in payloads:
        session.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload})


class PgBus:
    """Channels of short text payloads shared by every process on the same database."""

    def __init__(self, url: str) -> None:
        self.url = libpq_url(url)
        self._handlers: dict[str, list[Handler]] = {}
        self.on_reconnect: list[Callable[[], Awaitable[None]]] = []
        self._listener: asyncio.Task[None] | None = None
        self._sender: psycopg.AsyncConnection[object] | None = None
        self._send_lock = asyncio.Lock()
        self.listening = asyncio.Event()  # set while LISTEN is in place (cleared when the connection is lost)

    def subscribe(self, channel: str, handler: Handler) -> None:
        """Call `handler(payload)` for every notification on `channel` (subscribe before `start`)."""
        self._handlers.setdefault(channel, []).append(handler)

    async def start(self) -> None:
        """Listen in the background; returns once the first LISTEN is in place."""
        self._listener = asyncio.get_running_loop().create_task(self._listen(), name="pg-bus-listener")
        async with asyncio.timeout(10):
            await self.listening.wait()

    async def notify(self, channel: str, payload: str) -> None:
        """Send one notification; delivered to every listener (this process too) once committed."""
        import psycopg

        if len(payload.encode()) > MAX_PAYLOAD:
            raise ValueError(f"a notification carries at most {MAX_PAYLOAD} bytes")
        async with self._send_lock:
            for attempt in range(2):  # a dropped sending connection is re-opened once
                try:
                    if self._sender is None or self._sender.closed:
                        self._sender = await psycopg.AsyncConnection.connect(self.url, autocommit=True,
                                                                             connect_timeout=5)
                    await self._sender.execute("SELECT pg_notify(%s, %s)", (channel, payload))
                    return
                except psycopg.OperationalError:
                    self._sender = None
                    if attempt:
                        raise

    async def close(self) -> None:
        """Stop listening and close both connections."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        if self._sender is not None:
            with contextlib.suppress(Exception):
                await self._sender.close()

    async def _listen(self) -> None:
        """LISTEN on every subscribed channel and dispatch; re-open a lost connection."""
        import psycopg

        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True,
                                                                 connect_timeout=5) as conn:
                    for channel in self._handlers:
                        await conn.execute(f'LISTEN "{channel}"')  # channel names are ours, never user input
                    if failures:
                        for again in self.on_reconnect:
                            await again()
                    failures = 0
                    self.listening.set()
                    async for note in conn.notifies():
                        for handler in self._handlers.get(note.channel, ()):
                            try:
                                handler(note.payload)
                            except Exception:  # one bad handler must not stop the bus
                                log.exception("bus handler for %s failed", note.channel)
            except asyncio.CancelledError:
                self.listening.clear()
                raise
            except Exception as exc:
                self.listening.clear()
                log.warning("lost the database's notifications (%s); listening again", type(exc).__name__)
            await asyncio.sleep(RECONNECT_S[min(failures, len(RECONNECT_S) - 1)])
            failures += 1
