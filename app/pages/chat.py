"""The Chat page: stored conversations, streamed replies, stop, re-attach after reload."""

from __future__ import annotations

from typing import Any

from nicegui import background_tasks, ui

from app.auth import current_user_id
from app.context import Lantern
from app.pages.frame import frame
from components.conversation_list import ConversationList
from components.message_view import MessageView
from services.errors import LanternError
from services.events import Done, Error, TextDelta, Usage
from storage import conversations as conv_repo


def register(lantern: Lantern) -> None:
    """Routes: a new chat and a stored one."""

    @ui.page("/")
    async def new_chat() -> None:
        await ChatPage(lantern, None).build()

    @ui.page("/chat/{conversation_id}")
    async def stored_chat(conversation_id: str) -> None:
        await ChatPage(lantern, conversation_id).build()


class ChatPage:
    """One tab's view of one conversation."""

    def __init__(self, lantern: Lantern, conversation_id: str | None) -> None:
        self.lantern = lantern
        self.conversation_id = conversation_id
        self.running_run: str | None = None

    async def build(self) -> None:
        """Draw the page and re-attach to a reply still being generated."""
        user_id = current_user_id()
        conv, messages = None, []
        if self.conversation_id:
            conv = await self.lantern.db.call(conv_repo.get_conversation,
                                              conversation_id=self.conversation_id, user_id=user_id)
            if conv is not None:
                messages = await self.lantern.db.call(conv_repo.list_messages,
                                                      conversation_id=self.conversation_id)
        with frame("Chat") as chrome:
            with chrome.drawer:
                self.sidebar = ConversationList(load=self._list, rename=self._rename, delete=self._delete,
                                                current=self.conversation_id)
            await self.sidebar.refresh()
            if self.conversation_id and conv is None:
                ui.label("This conversation does not exist (it may have been deleted).") \
                    .classes("text-lg")
                ui.link("Start a new chat", "/")
                return
            self._controls(conv.model if conv else None)
            self.thread = ui.column().classes("w-full gap-3")
            with self.thread:
                self.empty = ui.label("Ask anything. Enter sends, Shift+Enter adds a line.") \
                    .classes("opacity-60 self-center py-12")
                self.empty.set_visibility(not messages)
                live = [found for m in messages if (found := await self._show_stored(m))]
            self._composer()
            for run_id, view in live:
                self._follow(run_id, view)

    async def _list(self, q: str) -> list[dict[str, Any]]:
        """The sidebar's rows."""
        items, _total = await self.lantern.db.call(conv_repo.list_conversations, user_id=current_user_id(),
                                                   q=q, limit=100)
        return items

    async def _rename(self, conversation_id: str, title: str) -> None:
        """Rename from the sidebar."""
        await self.lantern.db.call(conv_repo.rename_conversation, conversation_id=conversation_id,
                                   user_id=current_user_id(), title=title)

    async def _delete(self, conversation_id: str) -> None:
        """Delete from the sidebar (after its confirmation)."""
        await self.lantern.db.call(conv_repo.delete_conversation, conversation_id=conversation_id,
                                   user_id=current_user_id())
        ui.notify("Conversation deleted.")

    def _controls(self, model: str | None) -> None:
        """Model picker."""
        options = {m.id: m.id for m in self.lantern.registry.list_models() if m.available}
        current = model if model in options else self.lantern.registry.default_model
        if current not in options and options:
            current = next(iter(options))
        with ui.row().classes("w-full items-center gap-2"):
            self.model = ui.select(options, value=current, label="Model").classes("min-w-64") \
                .props("dense outlined")
            unavailable = [m for m in self.lantern.registry.list_models() if not m.available]
            if unavailable:
                reasons = sorted({f"{m.provider}: {m.reason}" for m in unavailable})
                ui.icon("info").classes("opacity-60").tooltip("Not available: " + "; ".join(reasons))

    def _composer(self) -> None:
        """Input, send and stop."""
        with ui.row().classes("w-full items-end gap-2 sticky bottom-0 py-2 bg-inherit"):
            self.input = ui.textarea(placeholder="Message Lantern…").props("autogrow outlined autofocus") \
                .classes("flex-grow")
            self.input.on("keydown.enter.exact.prevent", self.send)
            self.input.on("keydown.esc", self.stop)
            self.send_button = ui.button(icon="send", on_click=self.send).props("round").tooltip("Send (Enter)")
            self.stop_button = ui.button(icon="stop", on_click=self.stop).props("round color=negative") \
                .tooltip("Stop (Esc)")
            self.stop_button.set_visibility(False)

    async def _show_stored(self, message: Any) -> tuple[str, MessageView] | None:
        """Draw a stored message; a reply still running is returned, to be followed live."""
        view = MessageView(role=message.role, content=message.content, created=message.created_at,
                           live=message.status == "running")
        if view.body is None:
            return None
        if message.status == "running" and message.run_id in self.lantern.runs.active:
            return message.run_id, view
        else:
            await view.body.load(message.content, live=False)
            view.show_usage(model=message.model, input_tokens=message.input_tokens,
                            output_tokens=message.output_tokens, cost_usd=message.cost_usd,
                            status=message.status)
            if err := message.extra.get("error"):
                view.show_error(err["message"])
        return None

    async def send(self) -> None:
        """Send the typed message and stream the reply."""
        text = (self.input.value or "").strip()
        if self.running_run:
            ui.notify("A reply is still being written: stop it first (Esc).", type="warning")
            return
        if not text:
            ui.notify("Type a message first.", type="warning")
            return
        try:
            start = await self.lantern.chat.start(
                user_id=current_user_id(), messages=[{"role": "user", "content": text}],
                model=self.model.value, conversation_id=self.conversation_id)
        except LanternError as exc:
            ui.notify(str(exc), type="negative", multi_line=True)
            return
        self.input.value = ""
        if self.conversation_id is None:
            self.conversation_id = start.conversation_id
            self.sidebar.current = start.conversation_id
            ui.navigate.history.replace(f"/chat/{start.conversation_id}")
            await self.sidebar.refresh()
        self.empty.set_visibility(False)
        with self.thread:
            MessageView(role="user", content=text)
            view = MessageView(role="assistant", live=True)
        self._follow(start.run.id, view)

    def _follow(self, run_id: str, view: MessageView) -> None:
        """Stream a run's events into a reply view, in the background."""
        self.running_run = run_id
        self.stop_button.set_visibility(True)
        self.send_button.set_visibility(False)
        background_tasks.create(self._consume(run_id, view), name=f"follow-{run_id}")

    async def _consume(self, run_id: str, view: MessageView) -> None:
        """Replay then follow the run; ends quietly if the tab goes away (the run does not)."""
        assert view.body is not None
        usage: Usage | None = None
        async for _seq, event in self.lantern.runs.subscribe(run_id):
            if view.body.is_deleted:
                return
            match event:
                case TextDelta(delta=delta):
                    view.body.append(delta)
                case Usage():
                    usage = event
                case Error(message=message):
                    view.show_error(message)
                case Done(status=status):
                    await view.body.finish()
                    view.show_usage(model=f"{usage.provider}/{usage.model}" if usage else None,
                                    input_tokens=usage.input_tokens if usage else 0,
                                    output_tokens=usage.output_tokens if usage else 0,
                                    cost_usd=usage.cost_usd if usage else 0.0, status=status)
        self.running_run = None
        if not self.stop_button.is_deleted:
            self.stop_button.set_visibility(False)
            self.send_button.set_visibility(True)

    async def stop(self) -> None:
        """Stop the reply being written; what was written is kept."""
        if self.running_run:
            await self.lantern.runs.stop(self.running_run)
