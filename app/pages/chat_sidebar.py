"""The Chat page's conversation list: its rows, renames and deletes, for the signed-in user."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from app.auth import current_user_id
from app.context import Lantern
from storage import conversations as conv_repo


class SidebarRows:
    """What the sidebar's `ConversationList` loads and changes."""

    def __init__(self, lantern: Lantern) -> None:
        self.lantern = lantern

    async def list(self, q: str) -> list[dict[str, Any]]:
        """The sidebar's rows."""
        items, _total = await self.lantern.db.call(conv_repo.list_conversations, user_id=current_user_id(),
                                                   q=q, limit=100)
        return items

    async def one(self, conversation_id: str) -> dict[str, Any] | None:
        """One sidebar row, for a conversation just created."""
        conv = await self.lantern.db.call(conv_repo.get_conversation, conversation_id=conversation_id,
                                          user_id=current_user_id())
        return {"id": conv.id, "title": conv.title} if conv is not None else None

    async def rename(self, conversation_id: str, title: str) -> None:
        """Rename from the sidebar."""
        await self.lantern.db.call(conv_repo.rename_conversation, conversation_id=conversation_id,
                                   user_id=current_user_id(), title=title)

    async def delete(self, conversation_id: str) -> None:
        """Delete from the sidebar (after its confirmation)."""
        await self.lantern.db.call(conv_repo.delete_conversation, conversation_id=conversation_id,
                                   user_id=current_user_id())
        ui.notify("Conversation deleted.")
