"""Chat routes: `POST /api/chat` (whole reply) and `/api/chat/stream` (SSE) (../shared/API.md, Chat)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from app.api.responses import ChatReply, documented
from app.api.schemas import ChatBody
from app.api.sse import sse_response
from app.auth import current_user_id
from app.context import Lantern
from storage import runs as run_repo


def build_chat_router(lantern: Lantern) -> APIRouter:
    """The chat routes, bound to this app's services."""
    router = APIRouter()

    @router.post("/api/chat", response_model=None, responses=documented(ChatReply))
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

    return router


async def _start_chat(lantern: Lantern, body: ChatBody) -> Any:
    """Start a chat reply from an API body."""
    return await lantern.chat.start(
        user_id=current_user_id(), messages=[m.model_dump() for m in body.messages], model=body.model,
        conversation_id=body.conversation_id, system=body.system, temperature=body.temperature,
        max_tokens=body.max_tokens, tools=body.tools)
