"""A TCP relay in front of the app that counts the bytes the browser really receives (after compression).

CDP reports a websocket frame's payload once the browser has inflated it; uvicorn negotiates
permessage-deflate, so the wire carries fewer bytes. Connections are told apart by their first request:
the socket.io websocket, or plain HTTP (pages, modules, API).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter


class WireCounter:
    """Relays 127.0.0.1:<port> to the app; `received` counts server-to-browser bytes per kind since `reset()`."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.received: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def reset(self) -> None:
        self.received.clear()

    async def __aenter__(self) -> WireCounter:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            app_r, app_w = await asyncio.open_connection("127.0.0.1", self.target_port)
            first = await client_r.read(65536)
            kind = "ws" if b"upgrade: websocket" in first.lower() else "http"
            app_w.write(first)
            await asyncio.gather(self._pump(client_r, app_w, None), self._pump(app_r, client_w, kind))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            client_w.close()
            self._tasks.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, kind: str | None) -> None:
        try:
            while data := await reader.read(65536):
                if kind is not None:
                    self.received[kind] += len(data)
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
