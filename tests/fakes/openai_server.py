"""A fake OpenAI-compatible HTTP server: streams scripted chat completions on 127.0.0.1.

It is a real server (uvicorn in a thread), so the `openai` SDK's wire format is exercised.
It counts open streams, so tests can prove that stop closes the upstream connection.
It can also behave as real servers were seen to (llama-cpp-python's above all): repeat a tool's name in
every fragment, report no usage, stop at the length limit, end without `[DONE]`, refuse `json_schema`,
answer 404 outside `/v1` and list its models at `/v1/models`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.loopback import LoopbackServer, free_port


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
    repeat_name: bool = False  # like llama-cpp-python: every tool-call fragment repeats its id and name
    usage: bool = True  # send a usage chunk (llama-cpp-python never does, whatever stream_options say)
    finish: str | None = "auto"  # the finish_reason: "auto" is stop or tool_calls; None sends no final chunk
    done: bool = True  # end with `data: [DONE]` (else the body just ends)
    body: str | dict[str, Any] | None = None  # the body of an error status, instead of a scripted message
    content_type: str | None = None  # of that body (text/plain for a str, JSON otherwise)
    # Seconds after a whole reply at which the server drops the kept-alive connection without having said
    # `Connection: close`, answering nothing else meanwhile (llama-cpp-python, after a stream that failed on
    # its side, still holds its model's lock: a request sent on that connection dies with it).
    drop_connection_after: float | None = None


@dataclass
class FakeOpenAI(LoopbackServer):
    """Start with `with FakeOpenAI() as fake:`; `fake.base_url` goes to the provider."""

    replies: list[Reply] = field(default_factory=lambda: [Reply()])
    requests: list[dict[str, Any]] = field(default_factory=list)
    open_streams: int = 0
    closed_at: float | None = None
    models: list[str] | None = field(default_factory=lambda: ["fake-model"])  # None: /v1/models is a 404
    # The status with which `response_format: json_schema` is refused (0: accepted). llama-cpp-python answers
    # 500 with its validation error; others 400. A refused request does not use up a reply.
    refuse_json_schema: int = 0
    not_found: str = "json"  # outside /v1: FastAPI's {"detail": "Not Found"}, "html" or "text"
    model_requests: int = 0  # how many times /v1/models was asked

    def __post_init__(self) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.origin}/v1"
        self._answered = 0
        self._busy: asyncio.Event | None = None  # set while a reply holds the server (drop_connection_after)
        app = Starlette(routes=[Route("/v1/chat/completions", self._completions, methods=["POST"]),
                                Route("/v1/models", self._models),
                                Route("/{path:path}", self._not_found, methods=["GET", "POST"])])
        self._serve(app)

    async def _completions(self, request: Request) -> Response:
        body = await request.json()
        while self._busy is not None:  # one reply at a time, as a server with one model lock
            await self._busy.wait()
        self.requests.append(body)
        if self.refuse_json_schema and (body.get("response_format") or {}).get("type") == "json_schema":
            return _refusal(self.refuse_json_schema)
        reply = self.replies[min(self._answered, len(self.replies) - 1)]
        self._answered += 1
        if reply.hang_before:
            await asyncio.sleep(3600)
        if reply.status != 200:
            headers = {"retry-after": reply.retry_after} if reply.retry_after else {}
            if reply.body is not None:
                if isinstance(reply.body, str):
                    return Response(reply.body, status_code=reply.status, headers=headers,
                                    media_type=reply.content_type or "text/plain")
                return JSONResponse(reply.body, status_code=reply.status, headers=headers)
            message = "scripted failure"
            if reply.echo_key:
                message = f"Incorrect API key provided: {request.headers.get('authorization', '')}"
            return JSONResponse({"error": {"message": message, "type": "server_error"}},
                                status_code=reply.status, headers=headers)
        if not body.get("stream"):
            return JSONResponse(_completion(body["model"], reply.text))
        chunks = self._chunks(body["model"], reply)
        response = StreamingResponse(_awkward(chunks) if reply.awkward else chunks, media_type="text/event-stream")
        if reply.drop_connection_after is None:
            return response
        self._busy = asyncio.Event()
        return _ThenDrop(response, reply.drop_connection_after, self._free)

    def _free(self) -> None:
        if self._busy is not None:
            self._busy.set()
            self._busy = None

    async def _models(self, request: Request) -> Response:
        self.model_requests += 1
        if self.models is None:
            return await self._not_found(request)
        return JSONResponse({"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "me"}
                                                        for m in self.models]})

    async def _not_found(self, request: Request) -> Response:
        """What a server says for a path it does not serve (a base URL without /v1 leads here)."""
        if self.not_found == "html":
            return HTMLResponse("<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>", status_code=404)
        if self.not_found == "text":
            return Response("404 page not found", status_code=404, media_type="text/plain")
        return JSONResponse({"detail": "Not Found"}, status_code=404)

    async def _chunks(self, model: str, reply: Reply) -> AsyncIterator[str]:
        self.open_streams += 1
        try:
            if reply.repeat_name:  # llama-cpp-python opens with a role chunk whose other fields are null
                yield _sse(_chunk(model, {"role": "assistant", "content": None, "function_call": None,
                                          "tool_calls": None}))
            for n, i in enumerate(range(0, len(reply.text), reply.chunk)):
                if reply.delay:
                    await asyncio.sleep(reply.delay)
                if reply.drop_after is not None and n == reply.drop_after:
                    raise ConnectionResetError("fake server drops the stream")  # uvicorn cuts the connection
                yield _sse(_chunk(model, {"content": reply.text[i:i + reply.chunk]}))
                if reply.malformed and n == 0:
                    yield "data: {this is not json\n\n"
            for index, call in enumerate(reply.tool_calls):
                frames = _repeated_name_fragments if reply.repeat_name else _tool_fragments
                for delta in frames(index, call["name"], json.dumps(call["args"])):
                    yield _sse(_chunk(model, delta))
            if reply.hang_after:
                await asyncio.sleep(3600)
            if reply.finish is not None:
                finish = ("tool_calls" if reply.tool_calls else "stop") if reply.finish == "auto" else reply.finish
                yield _sse(_chunk(model, {}, finish=finish))
            if reply.usage:
                usage = {"prompt_tokens": 7, "completion_tokens": len(reply.text.split()), "total_tokens": 0}
                yield _sse({**_chunk(model, {}), "choices": [], "usage": usage})
            if reply.done:
                yield "data: [DONE]\n\n"
        finally:
            self.open_streams -= 1
            self.closed_at = time.monotonic()


class _ThenDrop(Response):
    """A whole response, then a failure in the app: uvicorn closes the connection the client keeps alive."""

    def __init__(self, inner: Response, delay: float, done: Callable[[], None]) -> None:
        self.inner = inner
        self.delay = delay
        self.done = done

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.inner(scope, receive, send)
            await asyncio.sleep(self.delay)
            raise ConnectionAbortedError("fake server drops the connection after its reply")
        finally:
            self.done()


async def _awkward(frames: AsyncIterator[str]) -> AsyncIterator[bytes]:
    """Legal SSE as some servers send it, cut so that lines, CRLFs and UTF-8 characters straddle reads."""
    async for frame in frames:
        if frame.startswith("data: {"):
            frame = f"data: {json.dumps(json.loads(frame[6:]), ensure_ascii=False)}\n\n"
        raw = f": keep-alive\n\n{frame}".replace("\n", "\r\n").encode()
        for i in range(0, len(raw), 3):
            yield raw[i:i + 3]


def _tool_fragments(index: int, name: str, arguments: str) -> list[dict[str, Any]]:
    """As OpenAI streams a call: id and name once, then the arguments in pieces."""
    half = len(arguments) // 2
    return [{"tool_calls": [{"index": index, "id": f"call_{index}", "type": "function",
                             "function": {"name": name, "arguments": arguments[:half]}}]},
            {"tool_calls": [{"index": index, "function": {"arguments": arguments[half:]}}]}]


def _repeated_name_fragments(index: int, name: str, arguments: str) -> list[dict[str, Any]]:
    """As llama-cpp-python streams a call: every fragment repeats the id and the name (and a legacy mirror)."""
    out: list[dict[str, Any]] = []
    for i in range(0, max(len(arguments), 1), 4):
        function = {"name": name, "arguments": arguments[i:i + 4]}
        out.append({"role": None, "content": None, "function_call": function,
                    "tool_calls": [{"index": index, "id": f"call__{index}_{name}_cmpl-fake", "type": "function",
                                    "function": dict(function)}]})
    return out


def _refusal(status: int) -> Response:
    """How servers without structured output refuse `json_schema` (this is llama-cpp-python's text)."""
    message = ("1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
               "'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}")
    kind = "internal_server_error" if status >= 500 else "invalid_request_error"
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": None}},
                        status_code=status)


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
