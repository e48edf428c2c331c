"""What every wire-level fake shares: a Starlette app served by uvicorn on 127.0.0.1 in a thread, started and
stopped as a context manager by the test that uses it."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette


class LoopbackServer:
    """Base of the fakes: call `_serve(app)` when built; `with fake:` runs it for the test."""

    port: int
    _server: uvicorn.Server
    _thread: threading.Thread

    def _serve(self, app: Starlette) -> None:
        """Prepare the server on `self.port` (a free one unless chosen already); it starts on `__enter__`."""
        self.port = getattr(self, "port", None) or free_port()
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                     lifespan="off", timeout_graceful_shutdown=1))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def free_port() -> int:
    """An unused loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
