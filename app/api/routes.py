"""Service, chat, conversation and run routes, per ../shared/API.md."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from app import __version__
from app.api.downloads import download
from app.api.schemas import ChatBody
from app.api.sse import sse_response
from app.auth import current_user_id
from app.context import Lantern
from services.core.errors import NotFound
from services.export import conversation as conversation_export
from services.export.conversation import conversation_document
from services.export.formats import render
from storage import conversations as conv_repo
from storage import runs as run_repo


def build_router(lantern: Lantern) -> APIRouter:
    """All API routes, bound to this app's services."""
    router = APIRouter()

    @router.get("/health")
    async def health() -> JSONResponse:
        """Liveness and database reachability."""
        ok = await lantern.db.ping()
        body = {"status": "ok" if ok else "degraded", "version": __version__,
                "database": "ok" if ok else "unreachable"}
        return JSONResponse(body, status_code=200 if ok else 503)

    @router.get("/api/models")
    async def models() -> dict[str, Any]:
        """Every model with availability and why not."""
        return {"default": lantern.registry.default_model,
                "models": [vars_of(m) for m in await lantern.registry.list_models_live()]}

    @router.post("/api/chat")
    async def chat(body: ChatBody) -> dict[str, Any]:
        """Send messages and wait for the whole reply."""
        start = await _start_chat(lantern, body)
        status = await lantern.runs.wait(start.run.id)
        run = await lantern.db.call(run_repo.get_run, run_id=start.run.id)
        assert run is not None
        return {"conversation_id": start.conversation_id, "run_id": run.id, "trace_id": run.trace_id,
                "status": status, "provider": start.provider, "model": start.model,
                "message": run.result.get("message", {"role": "assistant", "content": ""}),
                "usage": {"input_tokens": run.input_tokens, "output_tokens": run.output_tokens,
                          "cost_usd": run.cost_usd},
                **({"error": {"type": run.error_type or "error", "message": run.error}} if run.error else {})}

    @router.post("/api/chat/stream")
    async def chat_stream(body: ChatBody) -> Response:
        """Send messages and stream the reply as SSE; the run goes on if the client leaves."""
        start = await _start_chat(lantern, body)
        response = sse_response(lantern.runs.follow(start.run.id))
        response.headers["X-Run-Id"] = start.run.id
        response.headers["X-Conversation-Id"] = start.conversation_id
        return response

    @router.get("/api/conversations")
    async def conversations(q: str = "", limit: int = Query(50, ge=1, le=500),
                            offset: int = Query(0, ge=0, le=2**31)) -> dict[str, Any]:  # beyond: a 500 from the driver
        """The user's conversations, newest first; `q` searches titles and messages."""
        items, total = await lantern.db.call(conv_repo.list_conversations, user_id=current_user_id(),
                                             q=q, limit=limit, offset=offset)
        return {"items": items, "total": total}

    @router.get("/api/conversations/{conversation_id}")
    async def conversation(conversation_id: str) -> dict[str, Any]:
        """A conversation with its messages in order."""
        found = await lantern.db.call(_conversation_with_messages, conversation_id=conversation_id,
                                      user_id=current_user_id())
        if found is None:
            raise NotFound(f"No conversation {conversation_id}")
        return found

    @router.delete("/api/conversations/{conversation_id}", status_code=204)
    async def delete_conversation(conversation_id: str) -> Response:
        """Delete a conversation."""
        if not await lantern.db.call(conv_repo.delete_conversation, conversation_id=conversation_id,
                                     user_id=current_user_id()):
            raise NotFound(f"No conversation {conversation_id}")
        return Response(status_code=204)

    @router.get("/api/conversations/{conversation_id}/export")
    async def export_conversation(
        conversation_id: str,
        fmt: Literal["md", "json", "pdf"] = Query(
            "md", alias="format", description="md and pdf: the current branch; json: every branch, lossless"),
    ) -> Response:
        """The conversation as a file to download."""
        doc = await lantern.db.call(conversation_document, conversation_id=conversation_id,
                                    user_id=current_user_id())
        if doc is None:
            raise NotFound(f"No conversation {conversation_id}")
        return download(await render(conversation_export, doc, fmt))

    return router


async def _start_chat(lantern: Lantern, body: ChatBody) -> Any:
    """Start a chat reply from an API body."""
    return await lantern.chat.start(
        user_id=current_user_id(), messages=[m.model_dump() for m in body.messages], model=body.model,
        conversation_id=body.conversation_id, system=body.system, temperature=body.temperature,
        max_tokens=body.max_tokens, tools=body.tools)


def _conversation_with_messages(session: Any, *, conversation_id: str, user_id: str) -> dict[str, Any] | None:
    """A conversation and its messages as JSON-ready dicts."""
    conv = conv_repo.get_conversation(session, conversation_id=conversation_id, user_id=user_id)
    if conv is None:
        return None
    messages = conv_repo.list_messages(session, conversation_id=conversation_id)
    return {**conv.model_dump(mode="json"),
            "messages": [m.model_dump(mode="json", exclude={"conversation_id"}) for m in messages]}


def vars_of(obj: Any) -> dict[str, Any]:
    """A slotted dataclass as a dict."""
    from dataclasses import asdict

    return asdict(obj)
