"""Server-sent events as raw bytes: the `data` payloads of complete events, without a model per chunk, and the
reply's text read from a raw streamed body (the OpenAI-compatible and Anthropic providers share it).

Follows the event-stream rules the `openai` SDK's own decoder follows: lines end in CR, LF or CRLF (and
nothing else: JSON may carry U+2028 or U+0085 raw), an event ends at a blank line, its `data:` lines are
joined with LF, comments (`: keep-alive`), other fields and events without data are skipped, and an
event the stream ends before finishing is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any, Protocol

import anyio
import httpx

from services.core.events import TextDelta

DRAIN_S = 0.1  # after the last event, how long to read on so an HTTP/1.1 connection can be reused (as the SDKs do)
# A raw body raises its HTTP library's errors: httpx2 from openai 3 / anthropic 1 on, httpx before (the SDKs' list).
TIMEOUT_ERRORS: tuple[type[Exception], ...] = (httpx.TimeoutException,)
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.RequestError, ssl.SSLError, anyio.EndOfStream)
# Before any answer, these mean the connection was gone (a kept-alive one the server had closed or reset).
PROTOCOL_ERRORS: tuple[type[Exception], ...] = (httpx.RemoteProtocolError,)
GONE_ERRORS: tuple[type[Exception], ...] = (httpx.ReadError, httpx.WriteError)
try:
    import httpx2
except ImportError:  # pragma: no cover - older SDKs
    pass
else:
    TIMEOUT_ERRORS += (httpx2.TimeoutException,)
    TRANSPORT_ERRORS += (httpx2.RequestError,)
    PROTOCOL_ERRORS += (httpx2.RemoteProtocolError,)
    GONE_ERRORS += (httpx2.ReadError, httpx2.WriteError)


class EventReader(Protocol):
    """A provider's reader of its stream's events: the text each one adds, and whether the reply is over."""

    done: bool

    def feed(self, data: bytes, request: Any) -> list[str]:
        """The text pieces this event's data adds (tool calls, usage and the stop reason are kept inside)."""
        ...


class RawBody(Protocol):
    """The streamed HTTP response (httpx or httpx2)."""

    request: Any
    http_version: str

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body as it arrives."""
        ...


async def text_deltas(body: RawBody, reader: EventReader) -> AsyncIterator[TextDelta]:
    """The reply's text as it arrives, one delta per read; the body's own errors pass through to the caller."""
    chunks = body.aiter_bytes()
    events = SSEDataDecoder()
    async for raw in chunks:
        # One delta per read, not per event: a busy server that reads several events at once then handles one
        # delta for them all, so its cost falls as its load rises.
        texts: list[str] = []
        for data in events.feed(raw):
            try:
                texts += reader.feed(data, body.request)
            except Exception:
                if texts:  # what came before a failure is still shown and kept
                    yield TextDelta(delta="".join(texts))
                raise
        if texts:
            yield TextDelta(delta="".join(texts))
        if reader.done:
            await _drain(body.http_version, chunks)
            return


async def _drain(http_version: str, chunks: AsyncIterator[bytes]) -> None:
    """Read what follows the last event (normally just the body's end), briefly, so the connection is reused."""
    if http_version != "HTTP/1.1":
        return  # HTTP/2 closes the stream and keeps the connection anyway
    with contextlib.suppress(TimeoutError, *TRANSPORT_ERRORS):
        async with asyncio.timeout(DRAIN_S):
            async for _ in chunks:
                pass


class SSEDataDecoder:
    """Feed body chunks as they arrive; get back the data of each event they complete."""

    def __init__(self) -> None:
        self._partial: list[bytes] = []  # an unfinished line, in pieces (no re-copying as it grows)
        self._data: list[bytes] = []  # the data lines of the event being read
        self._skip_lf = False  # the last chunk ended in CR: an LF starting the next one ends no line

    def feed(self, chunk: bytes) -> list[bytes]:
        """The data of every event this chunk completes, in order."""
        if self._skip_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._skip_lf = chunk[-1:] == b"\r"
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in chunk:
            if chunk:
                self._partial.append(chunk)
            return []
        lines = chunk.split(b"\n")
        if self._partial:
            self._partial.append(lines[0])
            lines[0] = b"".join(self._partial)
            self._partial.clear()
        if tail := lines.pop():
            self._partial.append(tail)
        events: list[bytes] = []
        data = self._data
        for line in lines:
            if line.startswith(b"data:"):
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif not line:
                if data:
                    events.append(data[0] if len(data) == 1 else b"\n".join(data))
                    data.clear()
            elif line == b"data":  # a field name alone has an empty value
                data.append(b"")
        return events
