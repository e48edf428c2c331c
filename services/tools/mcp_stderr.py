"""A stdio MCP server's stderr: kept in a temporary file, out of our log, its end shown when the server fails."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import IO

STDERR_KEEP_BYTES = 256 * 1024  # a chatty server's stderr is cut back to this, not kept forever
STDERR_SHOWN_CHARS = 300


@contextlib.contextmanager
def stderr_file(stdio: bool) -> Iterator[IO[bytes] | None]:
    """A temporary file for a stdio server's stderr: kept out of our log, its end shown when the server fails."""
    if not stdio:
        yield None
        return
    with tempfile.TemporaryFile() as file:
        yield file


def stderr_tail(errlog: IO[bytes] | None) -> str:
    """The last lines the server wrote to stderr, in one line."""
    if errlog is None or errlog.closed:
        return ""
    fd = errlog.fileno()
    size = os.fstat(fd).st_size
    data = os.pread(fd, 4096, max(0, size - 4096)).decode("utf-8", "replace")
    lines = [line.strip() for line in data.splitlines() if line.strip()]
    tail = " | ".join(lines[-3:])
    return tail[-STDERR_SHOWN_CHARS:]


def trim(errlog: IO[bytes] | None) -> None:
    """Cut a long-lived server's stderr file back to empty (the child shares its offset, so it writes from 0)."""
    if errlog is not None and not errlog.closed and os.fstat(errlog.fileno()).st_size > STDERR_KEEP_BYTES:
        os.ftruncate(errlog.fileno(), 0)
        os.lseek(errlog.fileno(), 0, os.SEEK_SET)
