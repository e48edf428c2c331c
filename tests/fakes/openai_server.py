"""A fake OpenAI-compatible HTTP server: streams scripted chat completions on 127.0.0.1.

It is a real server (uvicorn in a thread), so the `openai` SDK's wire format is exercised.
It counts open streams, so tests can prove that stop closes the upstream connection.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Reply:
    """What the server answers next: text in chunks, or an HTTP error status."""

    text: str = "Hello from the fake server."
    chunk: int = 5
    delay: float = 0.0
    status: int = 200
    hang_after: bool = False
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # {"name": ..., "args": {...}}
    retry_after: str | None = None  # Retry-After header on an error status
    hang_before: bool = False  # never answer (a client timeout must end it)
    drop_after: int | None = None  # cut the connection after this many chunks
    malformed: bool = False  # send a chunk that is not JSON
    echo_key: bool = False  # like some real providers: quote the caller's key in the error message
    awkward: bool = False  # keep-alive comments, CRLF, raw UTF-8, every frame cut into 3-byte pieces


@dataclass
class FakeOpenAI:
    """Start with `with FakeOpenAI() as fake:`; `fake.base_url` goes to the provider."""

    replies: list[Reply] = field(default_factory=lambda: [Reply()])
    requests: list[dict[str, Any]] = field(default_factory=list)
    open_streams: int = 0
    closed_at: float | None = None

    def __post_init__(self) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        app = Starlette(routes=[Route("/v1/chat/completions", self._completions, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                     lifespan="off", timeout_graceful_shutdown=1))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    async def _completions(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        reply = self.replies[min(len(self.requests) - 1, len(self.replies) - 1)]
        if reply.hang_before:
            await asyncio.sleep(3600)
        if reply.status != 200:
            headers = {"retry-after": reply.retry_after} if reply.retry_after else None
            message = "scripted failure"
            if reply.echo_key:
                message = f"Incorrect API key provided: {request.headers.get('authorization', '')}"
            return JSONResponse({"error": {"message": message, "type": "server_error"}},
                                status_code=reply.status, headers=headers)
        if not body.get("stream"):
            return JSONResponse(_completion(body["model"], reply.text))
        chunks = self._chunks(body["model"], reply)
        return StreamingResponse(_awkward(chunks) if reply.awkward else chunks, media_type="text/event-stream")

    async def _chunks(self, model: str, reply: Reply) -> AsyncIterator[str]:
        self.open_streams += 1
        try:
            for n, i in enumerate(range(0, len(reply.text), reply.chunk)):
                if reply.delay:
                    await asyncio.sleep(reply.delay)
                if reply.drop_after is not None and n == reply.drop_after:
                    raise ConnectionResetError("fake server drops the stream")  # uvicorn cuts the connection
                yield _sse(_chunk(model, {"content": reply.text[i:i + reply.chunk]}))
                if reply.malformed and n == 0:
                    yield "data: {this is not json\n\n"
            for index, call in enumerate(reply.tool_calls):
                arguments = json.dumps(call["args"])
                half = len(arguments) // 2  # arguments arrive in fragments, as from the real API
                yield _sse(_chunk(model, {"tool_calls": [{"index": index, "id": f"call_{index}", "type": "function",
                                                          "function": {"name": call["name"],
                                                                       "arguments": arguments[:half]}}]}))
                yield _sse(_chunk(model, {"tool_calls": [{"index": index,
                                                          "function": {"arguments": arguments[half:]}}]}))
            if reply.hang_after:
                await asyncio.sleep(3600)
            yield _sse(_chunk(model, {}, finish="tool_calls" if reply.tool_calls else "stop"))
            usage = {"prompt_tokens": 7, "completion_tokens": len(reply.text.split()), "total_tokens": 0}
            yield _sse({**_chunk(model, {}), "choices": [], "usage": usage})
            yield "data: [DONE]\n\n"
        finally:
            self.open_streams -= 1
            self.closed_at = time.monotonic()


async def _awkward(frames: AsyncIterator[str]) -> AsyncIterator[bytes]:
    """Legal SSE as some servers send it, cut so that lines, CRLFs and UTF-8 characters straddle reads."""
    async for frame in frames:
        if frame.startswith("data: {"):
            frame = f"data: {json.dumps(json.loads(frame[6:]), ensure_ascii=False)}\n\n"
        raw = f": keep-alive\n\n{frame}".replace("\n", "\r\n").encode()
        for i in range(0, len(raw), 3):
            yield raw[i:i + 3]


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _completion(model: str, text: str) -> dict[str, Any]:
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data)}\n\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
