"""A fake Anthropic API on 127.0.0.1: `/v1/messages` streamed as Anthropic's SSE events, and `GET /v1/models`.

A real HTTP server (uvicorn in a thread), so the `anthropic` SDK's own requests, headers and error handling are
exercised. Each reply is scripted; every request body is recorded so tests can see what was sent (temperature,
tools, tool_choice); open streams are counted so a test can prove that stop closes the upstream connection.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.loopback import LoopbackServer, free_port


@dataclass
class Reply:
    """What the server answers next: a streamed message, or an HTTP error."""

    text: str = "Hello from the fake Anthropic."
    chunk: int = 5  # characters per text_delta
    delay: float = 0.0  # seconds before each content event
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # {"name", "args"} or {"name", "json": raw}
    json_pieces: int = 3  # each tool's input JSON arrives cut into this many input_json_delta events
    stop_reason: str | None = None  # message_delta's reason; end_turn, or tool_use when there are tool calls
    input_tokens: int = 11
    output_tokens: int = 9
    usage: bool = True  # False: like some proxies, message_start and message_delta carry no usage
    end_early: bool = False  # close the body cleanly after the content: no message_delta, no message_stop
    drop: bool = False  # cut the connection after the content (not a clean end)
    stall: bool = False  # after the first text, only pings, forever (a stop must close it)
    stream_error: dict[str, str] | None = None  # {"type", "message"}: an `event: error` after the content
    status: int = 200
    error_type: str = "api_error"
    error_message: str = "scripted failure"
    raw_error: str | None = None  # a body that is not Anthropic's (a proxy's own page), with `status`
    retry_after: str | None = None
    refuse_temperature: bool = False  # 400 when the body has a temperature, as API version 2026-10-21 does
    echo_key: bool = False  # quote the caller's credentials in the error message, as careless proxies do


@dataclass
class FakeAnthropic(LoopbackServer):
    """Start with `with FakeAnthropic() as fake:`; `fake.base_url` goes to the provider."""

    replies: list[Reply] = field(default_factory=lambda: [Reply()])
    models: list[str] = field(default_factory=lambda: ["claude-fake-1", "claude-fake-2", "claude-fake-3"])
    models_status: int = 200
    page_size: int = 2  # the model list comes in pages this long (the SDK must follow `after_id`)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    open_streams: int = 0
    closed_at: float | None = None

    def __post_init__(self) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        app = Starlette(routes=[Route("/v1/messages", self._messages, methods=["POST"]),
                                Route("/v1/models", self._models, methods=["GET"])])
        self._serve(app)

    async def _messages(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        reply = self.replies[min(len(self.requests) - 1, len(self.replies) - 1)]
        if reply.refuse_temperature and "temperature" in body:
            return _error(400, "invalid_request_error", "temperature: Extra inputs are not permitted")
        if reply.raw_error is not None:
            return PlainTextResponse(reply.raw_error, status_code=reply.status)
        if reply.status != 200:
            message = reply.error_message
            if reply.echo_key:
                message += f" (you sent {request.headers.get('x-api-key') or request.headers.get('authorization')})"
            headers = {"retry-after": reply.retry_after} if reply.retry_after else None
            return _error(reply.status, reply.error_type, message, headers)
        if not body.get("stream"):
            return _error(400, "invalid_request_error", "this fake only streams")
        return StreamingResponse(self._events(body["model"], reply), media_type="text/event-stream")

    async def _models(self, request: Request) -> Response:
        if self.models_status != 200:
            return _error(self.models_status, "api_error", "model listing is down")
        limit = min(int(request.query_params.get("limit", 20)), self.page_size)
        after = request.query_params.get("after_id")
        start = self.models.index(after) + 1 if after in self.models else 0
        page = self.models[start:start + limit]
        data = [{"type": "model", "id": m, "display_name": m.title(), "created_at": "2025-01-01T00:00:00Z"}
                for m in page]
        return JSONResponse({"data": data, "has_more": start + limit < len(self.models),
                             "first_id": page[0] if page else None, "last_id": page[-1] if page else None})

    async def _events(self, model: str, reply: Reply) -> AsyncIterator[str]:
        self.open_streams += 1
        try:
            usage = {"usage": {"input_tokens": reply.input_tokens, "output_tokens": 1}} if reply.usage else {}
            yield _sse("message_start", {"message": {
                "id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": None, "stop_sequence": None, **usage}})
            yield _sse("ping", {})
            index = 0
            if reply.text:
                yield _sse("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})
                for i in range(0, len(reply.text), reply.chunk):
                    if reply.delay:
                        await asyncio.sleep(reply.delay)
                    yield _sse("content_block_delta", {"index": index, "delta": {
                        "type": "text_delta", "text": reply.text[i:i + reply.chunk]}})
                    while reply.stall:
                        await asyncio.sleep(0.02)
                        yield _sse("ping", {})
                yield _sse("content_block_stop", {"index": index})
                index += 1
            for n, call in enumerate(reply.tool_calls):
                yield _sse("content_block_start", {"index": index, "content_block": {
                    "type": "tool_use", "id": f"toolu_fake_{n}", "name": call["name"], "input": {}}})
                raw = call["json"] if "json" in call else json.dumps(call["args"])
                step = max(1, -(-len(raw) // reply.json_pieces))
                yield _sse("content_block_delta", {"index": index, "delta": {
                    "type": "input_json_delta", "partial_json": ""}})  # the real API opens with an empty piece
                for i in range(0, len(raw), step):
                    yield _sse("content_block_delta", {"index": index, "delta": {
                        "type": "input_json_delta", "partial_json": raw[i:i + step]}})
                yield _sse("content_block_stop", {"index": index})
                index += 1
            if reply.drop:
                raise ConnectionResetError("fake server drops the stream")  # uvicorn cuts the connection
            if reply.stream_error is not None:
                yield _sse("error", {"error": reply.stream_error})
                return
            if reply.end_early:
                return
            stop = reply.stop_reason or ("tool_use" if reply.tool_calls else "end_turn")
            out = {"usage": {"output_tokens": reply.output_tokens}} if reply.usage else {}
            yield _sse("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None}, **out})
            yield _sse("message_stop", {})
        finally:
            self.open_streams -= 1
            self.closed_at = time.monotonic()


def _error(status: int, type_: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Anthropic's error body."""
    return JSONResponse({"type": "error", "error": {"type": type_, "message": message}, "request_id": "req_fake"},
                        status_code=status, headers=headers)


def _sse(event: str, data: dict[str, Any]) -> str:
    """One event as Anthropic frames it: a named event whose data repeats the name as `type`."""
    return f"event: {event}\ndata: {json.dumps({'type': event, **data})}\n\n"
