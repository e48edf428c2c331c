"""One chat message: role, time, body, and for replies the model, tokens, cost and status."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from components.streaming_markdown import StreamingMarkdown

STATUS_LABEL = {"stopped": "stopped", "failed": "failed", "interrupted": "interrupted",
                "running": "generating…"}


class MessageView:
    """Draws a message; a reply's footer and body can be updated as its run streams."""

    def __init__(self, *, role: str, content: str = "", created: Any = None, live: bool = False) -> None:
        self.role = role
        card_class = "lantern-msg-user" if role == "user" else "lantern-msg-assistant"
        with ui.column().classes(f"w-full gap-1 rounded-lg px-4 py-3 {card_class}") as self.box:
            with ui.row().classes("w-full items-center gap-2 text-xs opacity-70"):
                ui.icon("person" if role == "user" else "auto_awesome")
                ui.label({"user": "You", "assistant": "Assistant"}.get(role, role.title()))
                if created is not None:
                    ui.label(created.strftime("%H:%M")).tooltip(created.isoformat(timespec="seconds"))
            self.body: StreamingMarkdown | None = None
            if role == "user":
                ui.label(content).classes("whitespace-pre-wrap")
            else:
                self.body = StreamingMarkdown(live=live)
            self.error = ui.label("").classes("text-negative text-sm")
            self.error.set_visibility(False)
            self.footer = ui.label("").classes("text-xs opacity-60")

    def show_usage(self, *, model: str | None, output_tokens: int, input_tokens: int,
                   cost_usd: float, status: str) -> None:
        """Model, tokens, cost and any non-final status under the reply."""
        parts = [model or "", f"{input_tokens} in / {output_tokens} out tokens", f"${cost_usd:.4f}"]
        if status in STATUS_LABEL:
            parts.append(STATUS_LABEL[status])
        self.footer.text = " · ".join(p for p in parts if p)

    def show_error(self, message: str) -> None:
        """An error a person can act on, in the reply itself."""
        self.error.text = message
        self.error.set_visibility(True)
