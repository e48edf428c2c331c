"""A tool call as a collapsible card: name, arguments, result, duration and error state."""

from __future__ import annotations

import json
from typing import Any

from nicegui import ui

from components.streaming_markdown import StreamingMarkdown


class ToolCard:
    """Shows a call at once; `finish` fills in the result when it arrives."""

    def __init__(self, *, name: str, args: dict[str, Any]) -> None:
        self.name = name
        with ui.expansion(value=True).classes("w-full rounded border border-gray-500/30") \
                .props("dense header-class=text-sm").mark("tool-card") as self.box:
            with self.box.add_slot("header"), ui.row().classes("w-full items-center gap-2 no-wrap"):
                self.icon = ui.spinner(size="1em")
                ui.label(f"{name}").classes("font-mono font-semibold")
                self.status = ui.label("running…").classes("text-xs opacity-70")
            self.args = StreamingMarkdown(live=False)
            self.output = StreamingMarkdown(live=False)
        self._args_md = _args_markdown(name, args)

    async def show_args(self) -> None:
        """Render the arguments (SQL as a highlighted block)."""
        await self.args.load(self._args_md, live=False)

    async def finish(self, *, output: str, is_error: bool, seconds: float | None) -> None:
        """The result: a table or text, or an error the model will read and can recover from."""
        self.icon.delete()
        took = f"{seconds:.2f} s" if seconds is not None else ""
        self.status.text = " · ".join(p for p in ("error" if is_error else "done", took) if p)
        if is_error:
            self.status.classes("text-negative")
            self.box.classes("border-red-500/60")
        await self.output.load(output if not is_error else f"**Error:** {output}", live=False)


def _args_markdown(name: str, args: dict[str, Any]) -> str:
    """Arguments as markdown: a query as SQL, anything else as JSON."""
    if set(args) == {"query"} and isinstance(args["query"], str):
        return f"```sql\n{args['query']}\n```"
    if set(args) == {"expression"} and isinstance(args["expression"], str):
        return f"`{args['expression']}`"
    if not args:
        return "*(no arguments)*"
    return f"```json\n{json.dumps(args, indent=2, ensure_ascii=False)}\n```"
