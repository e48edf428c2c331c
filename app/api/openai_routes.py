"""Lantern as an OpenAI-compatible endpoint: `GET /v1/models`, `POST /v1/chat/completions` (../shared/API.md).

Behind the same gate, rate limit and token cap as the API; every `/v1` error is in OpenAI's shape, so the
official SDKs raise their own exception classes. A call is recorded in History unless its API token was
made unrecorded or the request says `X-Lantern-Record: off`. A streaming client that goes away stops the
run, which closes the upstream.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from app.api.openai_shapes import (
    ChunkWriter,
    OpenAIError,
    Reply,
    completion,
    error_response,
    lantern_error,
    parse_body,
    run_error,
    to_gateway,
)
from app.api.sse import HEADERS, shutting_down
from app.auth import current_principal, current_user_id
from app.context import Lantern
from services.chat.gateway import Gateway, GatewayCall, GatewayModel
from services.core.errors import LanternError
from services.core.events import Done, Error, Event, TextDelta, ToolCall

RECORD_HEADER = "X-Lantern-Record"
NOT_RECORDED = {"off", "0", "false", "no"}
POLL_S = 1.0  # how often a quiet stream checks for keepalive and shutdown
KEEPALIVE_S = 15.0
# How long a stream may wait for its first token before the headers go out: a failure before any text
# then still gets a real status (the SDKs raise by status), yet a slow first token never looks hung.
FIRST_EVENT_S = 10.0
MODEL_CREATED = 0  # OpenAI's `created` of a model: unknown for most of Lantern's


def build_openai_router(lantern: Lantern) -> APIRouter:
    """The `/v1` routes, bound to this app's services; the last one answers unknown `/v1` routes."""
    gateway = Gateway(db=lantern.db, registry=lantern.registry, runs=lantern.runs, chains=lantern.settings.chains,
                      max_prompt_chars=lantern.settings.max_prompt_chars)
    router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])

    @router.get("/models")
    async def list_models() -> Response:
        """The models a client may name: `provider/model` ids, and `chain/<name>` for fallback chains."""
        try:
            current_user_id()
            models = await gateway.models()
        except LanternError as exc:
            return lantern_error(exc)
        return JSONResponse({"object": "list", "data": [_model(m) for m in models]})

    @router.get("/models/{model_id:path}")
    async def get_model(model_id: str) -> Response:
        """One model, or 404 model_not_found."""
        try:
            current_user_id()
            return JSONResponse(_model(await gateway.model(model_id)))
        except LanternError as exc:
            return lantern_error(exc)

    @router.post("/chat/completions")  # the body is parsed here, so that a bad one gets OpenAI's 400, not our 422
    async def chat_completions(request: Request) -> Response:
        """A chat completion, whole or streamed as `chat.completion.chunk`s; a token made unrecorded, or
        `X-Lantern-Record: off`, keeps it out of History."""
        try:
            body = parse_body(await request.body())
            principal = current_principal()
            # The header can only turn recording off: a token made unrecorded stays so whatever a script sends.
            record = principal.record and request.headers.get(RECORD_HEADER, "on").strip().lower() not in NOT_RECORDED
            call = await gateway.start(user_id=principal.user_id, request=to_gateway(body), record=record)
        except OpenAIError as exc:
            return error_response(exc.status, str(exc), type_=exc.type, param=exc.param, code=exc.code)
        except LanternError as exc:
            return lantern_error(exc)
        id_ = f"chatcmpl-{call.run_id or uuid.uuid4().hex}"
        headers = {"X-Run-Id": call.run_id, "X-Conversation-Id": call.conversation_id or ""} if call.run_id else {}
        if body.stream:
            writer = ChunkWriter(id_=id_, model=body.model, include_usage=body.include_usage)
            return await _stream(call, request, writer, headers)
        return await _complete(call, request, id_, body.model, headers)

    @router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def not_found(request: Request) -> Response:
        """Unknown `/v1` routes, in OpenAI's shape (NiceGUI would serve its HTML 404 page)."""
        return error_response(404, f"Invalid URL ({request.method} {request.url.path}): Lantern serves "
                                   "GET /v1/models and POST /v1/chat/completions", code="unknown_url")

    return router


async def _complete(call: GatewayCall, request: Request, id_: str, model: str, headers: dict[str, str]) -> Response:
    """Wait for the whole reply (stopping it if the client leaves) and answer a `chat.completion`."""
    reply = Reply()

    async def collect() -> None:
        while (batch := await call.next()) is not None:
            for event in batch:
                reply.add(event)

    try:
        if not await _while_connected(request, collect):
            return Response(status_code=499)  # nobody reads it; the finally below stops the run
    finally:
        await _close_unless_done(call, reply)
    if reply.error is not None:
        return run_error(reply.error)
    return JSONResponse(completion(id_=id_, created=int(time.time()), model=model, reply=reply), headers=headers)


async def _stream(call: GatewayCall, request: Request, writer: ChunkWriter, headers: dict[str, str]) -> Response:
    """SSE of chunks; a call that fails before saying anything answers with the error's status instead."""
    first: list[Event] = []

    async def first_events() -> None:  # up to the first text, tool call or end, or what came in FIRST_EVENT_S
        with anyio.move_on_after(FIRST_EVENT_S):
            while (batch := await call.next()) is not None:
                first.extend(batch)
                if any(isinstance(e, TextDelta | ToolCall | Done) for e in batch):
                    return

    connected = await _while_connected(request, first_events)
    said = any(isinstance(e, TextDelta | ToolCall) for e in first)
    error = next((e for e in first if isinstance(e, Error)), None)
    if not connected or (error is not None and not said):
        seen = Reply()
        for event in first:
            seen.add(event)
        await _close_unless_done(call, seen)
        return run_error(error) if error is not None and connected else Response(status_code=499)
    return StreamingResponse(_chunks(call, writer, first), media_type="text/event-stream",
                             headers={**HEADERS, **headers})


async def _while_connected(request: Request, work: Callable[[], Awaitable[None]]) -> bool:
    """Run `work` to its end unless the client disconnects first (then it is cancelled and False returned).

    A waiting `receive()` is what hears the disconnect: polling `request.is_disconnected()` misses it behind
    NiceGUI's middlewares, which `/v1` passes through.
    """
    left = False
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            nonlocal left
            while (await request.receive())["type"] != "http.disconnect":
                continue
            left = True
            group.cancel_scope.cancel()

        group.start_soon(watch)
        await work()
        group.cancel_scope.cancel()
    return not left


async def _chunks(call: GatewayCall, writer: ChunkWriter, first: list[Event]) -> Any:
    """The stream's lines: role, deltas as they come, the finish (or the error), `[DONE]`; keepalive comments
    while quiet. However it ends (the client closing the connection included) the run is stopped."""
    try:
        yield writer.opening() + writer.feed(first)
        quiet = 0.0
        while writer.reply.status is None:
            batch = await call.next(timeout=POLL_S)
            if batch is None:
                break
            if batch:
                quiet = 0.0
                if lines := writer.feed(batch):
                    yield lines
            elif (quiet := quiet + POLL_S) >= KEEPALIVE_S:
                quiet = 0.0
                yield ": keepalive\n\n"
            if shutting_down():
                writer.reply.add(Error(error_type="unavailable",
                                       message="The server is restarting: send the request again."))
                break
        yield writer.closing()
    finally:
        await _close_unless_done(call, writer.reply)


async def _close_unless_done(call: GatewayCall, reply: Reply) -> None:
    """Stop a call that has not ended; shielded, since the client leaving cancels whoever was waiting on it."""
    if reply.status is None:
        with anyio.CancelScope(shield=True):
            await call.close()


def _model(model: GatewayModel) -> dict[str, Any]:
    """OpenAI's model object."""
    return {"id": model.id, "object": "model", "created": MODEL_CREATED, "owned_by": model.owned_by}
