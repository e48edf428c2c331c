"""Conversation routes: list, read, delete and export (../shared/API.md, Conversations)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Response

from app.api.downloads import download
from app.api.responses import ConversationOut, ConversationPage, documented
from app.auth import current_user_id
from app.context import Lantern
from services.core.errors import NotFound
from services.export import conversation as conversation_export
from services.export.conversation import conversation_document
from services.export.formats import render
from storage import conversations as conv_repo


def build_conversation_router(lantern: Lantern) -> APIRouter:
    """The conversation routes, bound to this app's services."""
    router = APIRouter()

    @router.get("/api/conversations", response_model=None, responses=documented(ConversationPage))
    async def conversations(q: str = "", limit: int = Query(50, ge=1, le=500),
                            offset: int = Query(0, ge=0, le=2**31)) -> dict[str, Any]:  # beyond: a 500 from the driver
        """The user's conversations, newest first; `q` searches titles and messages."""
        items, total = await lantern.db.call(conv_repo.list_conversations, user_id=current_user_id(),
                                             q=q, limit=limit, offset=offset)
        return {"items": items, "total": total}

    @router.get("/api/conversations/{conversation_id}", response_model=None, responses=documented(ConversationOut))
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


def _conversation_with_messages(session: Any, *, conversation_id: str, user_id: str) -> dict[str, Any] | None:
    """A conversation and its messages as JSON-ready dicts."""
    conv = conv_repo.get_conversation(session, conversation_id=conversation_id, user_id=user_id)
    if conv is None:
        return None
    messages = conv_repo.list_messages(session, conversation_id=conversation_id)
    return {**conv.model_dump(mode="json"),
            "messages": [m.model_dump(mode="json", exclude={"conversation_id"}) for m in messages]}
