"""One chat message: role, time, body, actions, and for replies the model, tokens, cost and status.

Drawn with few elements, since a thread draws up to 40 at once and every send draws two: hints are
`title` attributes rather than tooltip elements, and the note and error lines are created only
when there is something to show.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nicegui import ui

from components.message_card import MessageCard
from components.streaming_markdown import StreamingMarkdown
from components.tool_card import ToolCard
from services.core.usage import usage_text

STATUS_LABEL = {"stopped": "stopped", "failed": "failed", "interrupted": "interrupted",
                "running": "generating…"}
# A reply the model did not finish, by its stop reason (services/chat/reply.py CUT_OFF).
CUT_OFF_NOTE = {"length": "Stopped at the length limit — Continue to read on.",
                "interrupted": "The server ended this reply early — Continue to ask for the rest.",
                "content_filter": "The provider's content filter cut this reply short."}

TAIL_CLASSES = {"note": "lantern-msg-note", "error": "text-negative text-sm", "footer": "lantern-msg-foot"}

Handler = Callable[[], Awaitable[None]]


@dataclass(frozen=True, kw_only=True, slots=True)
class Branch:
    """Where a message sits among its siblings, and how to switch."""

    index: int
    count: int
    go: Callable[[int], Awaitable[None]]


class MessageView:
    """Draws a message; a reply's footer and body can be updated as its run streams."""

    def __init__(self, *, role: str, content: str = "", created: datetime | None = None, live: bool = False,
                 branch: Branch | None = None, on_edit: Callable[[str], Awaitable[None]] | None = None,
                 on_regenerate: Handler | None = None) -> None:
        self.role = role
        self.content = content
        # One element draws the box, header and buttons (components/message_card.py): issue #9 counts every
        # send's bytes, and a header of NiceGUI elements with a listener per button was ~1 KB per message.
        with MessageCard(role=role, created=created,
                         branch=(branch.index, branch.count) if branch is not None else None) as self.box:
            if branch is not None and branch.index > 0:
                self.box.offer("branch-prev", lambda: branch.go(branch.index - 1))
            if branch is not None and branch.index + 1 < branch.count:
                self.box.offer("branch-next", lambda: branch.go(branch.index + 1))
            if on_edit is not None:
                self.box.offer("edit", lambda: self._start_edit(on_edit))
            if on_regenerate is not None:
                self.box.offer("regenerate", on_regenerate)
            self.body: StreamingMarkdown | None = None
            self.live = live
            if role == "user":
                self.text = ui.label(content)  # pre-wrapped by lantern.css
            else:
                self.segments = ui.element("div").classes("lantern-msg-parts")
                with self.segments:
                    self.body = StreamingMarkdown(live=live)
            self.cards: dict[str, ToolCard] = {}
            # Below the body, in this order: note, error, footer; a reply always gets a footer (made later, it
            # would re-send the whole box), the others are made on first use.
            self._tail: dict[str, ui.label] = {}
            if role != "user":
                self._tail["footer"] = ui.label("").classes(TAIL_CLASSES["footer"])

    async def add_tool(self, *, call_id: str, name: str, args: dict[str, Any]) -> ToolCard:
        """A tool card after the text so far; later text goes below it."""
        assert self.body is not None
        await self.body.finish()
        with self.segments:
            card = ToolCard(name=name, args=args)
            self.body = StreamingMarkdown(live=self.live)
        self.cards[call_id] = card
        await card.show_args()
        return card

    async def load_parts(self, parts: list[dict[str, Any]]) -> None:
        """A stored reply with tool calls: text and cards in their order."""
        for part in parts:
            if part["type"] == "tool":
                card = await self.add_tool(call_id=part["id"], name=part["name"], args=part["args"])
                if part.get("output") is not None:
                    await card.finish(output=part["output"], is_error=part["is_error"], seconds=part["seconds"])
            elif self.body is not None:
                await self.body.load(part["text"], live=False)

    def show_usage(self, *, model: str | None, output_tokens: int, input_tokens: int,
                   cost_usd: float, status: str, estimated: bool = False) -> None:
        """Model, tokens, cost and any non-final status under the reply (≈: counted by Lantern, not the provider)."""
        parts = [model or "", usage_text(input_tokens, output_tokens, cost_usd, estimated=estimated)]
        if status in STATUS_LABEL:
            parts.append(STATUS_LABEL[status])
        self._line("footer", " · ".join(p for p in parts if p))

    def show_error(self, message: str) -> None:
        """An error a person can act on, in the reply itself."""
        self._line("error", message)

    def show_note(self, text: str) -> None:
        """A quiet remark, e.g. that earlier messages did not fit the context window."""
        self._line("note", text)

    def show_cut_off(self, reason: str, on_continue: Handler | None) -> None:
        """Say that the reply was cut off and why; offer Continue where reading on makes sense."""
        if reason not in CUT_OFF_NOTE:
            return
        self._line("note", CUT_OFF_NOTE[reason])
        if on_continue is not None and reason != "content_filter":
            self.box.offer("continue", on_continue)

    def drop_regenerate(self) -> None:
        """This reply is no longer the last one: regenerating and continuing are offered on the last only."""
        self.box.withdraw("regenerate")
        self.box.withdraw("continue")

    def _line(self, kind: str, text: str) -> None:
        """Set one of the lines below the body, creating it in its place the first time."""
        if (label := self._tail.get(kind)) is not None:
            label.text = text
            return
        with self.box:
            label = ui.label(text).classes(TAIL_CLASSES[kind])
        order = list(TAIL_CLASSES)
        later = sum(1 for k in self._tail if order.index(k) > order.index(kind))
        if later:
            label.move(self.box, target_index=len(self.box.default_slot.children) - 1 - later)
        self._tail[kind] = label

    def _start_edit(self, on_edit: Callable[[str], Awaitable[None]]) -> None:
        """Swap the text for an editor with Save and Cancel."""
        self.text.set_visibility(False)
        with self.box:
            editor = ui.column().classes("w-full gap-1")
        with editor:
            box = ui.textarea(value=self.content).props("autogrow outlined autofocus").classes("w-full") \
                .mark("edit-box")

            async def save() -> None:
                await on_edit(box.value or "")

            def cancel() -> None:
                editor.delete()
                self.text.set_visibility(True)

            box.on("keydown.enter.exact.prevent", save)
            box.on("keydown.esc", cancel)
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=cancel).props("flat dense")
                ui.button("Save & rerun", on_click=save).props("dense").mark("edit-save")

