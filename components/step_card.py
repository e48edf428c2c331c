"""One executed pipeline step as a card: status, model, figures, exact prompt and full response."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from components.streaming_markdown import StreamingMarkdown
from services.core.usage import usage_text

STATUS_ICONS = {"completed": ("check_circle", "positive"), "failed": ("error", "negative"),
                "stopped": ("stop_circle", "warning"), "interrupted": ("report", "warning")}


class StepCard:
    """A step fills live: `append` streams the response, `finish` adds the verdict and figures."""

    def __init__(self, *, index: int, title: str, model: str, prompt: str, live: bool = True) -> None:
        self.index = index
        self.title = title
        self.status = "running"
        with ui.card().classes("w-full gap-2 border-l-4 border-gray-400/60") \
                .mark(f"step-card step-{index}") as self.box:
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                self.icon_slot = ui.row().classes("items-center")
                with self.icon_slot:
                    ui.spinner(size="1.2em")
                ui.label(f"{index + 1}. {title}").classes("font-semibold").mark("step-title")
                ui.badge(model, color="grey-7").props("outline").classes("font-mono").mark("step-model")
                ui.space()
                self.figures = ui.label("").classes("text-xs opacity-70").mark("step-figures")
                self.status_label = ui.label("running…").classes("text-xs").mark("step-status")
            with ui.expansion("Prompt", icon="input").classes("w-full").props("dense"):
                ui.label(prompt).classes("font-mono text-xs whitespace-pre-wrap w-full").mark("step-prompt")
            with ui.expansion("Response", icon="output", value=live).classes("w-full").props("dense") \
                    as self.response_box:
                self.response = StreamingMarkdown(live=live).mark("step-response")
            self.problem = ui.column().classes("w-full gap-1")
            self.problem.set_visibility(False)

    @classmethod
    async def stored(cls, record: dict[str, Any]) -> StepCard:
        """A card for a stored step record, drawn at once."""
        card = cls(index=record["index"], title=record["title"], model=record["model"], prompt=record["prompt"],
                   live=False)
        await card.load(record)
        return card

    def append(self, delta: str) -> None:
        """More of the streamed response."""
        self.response.append(delta)

    async def finish(self, *, ok: bool, response: str, seconds: float, usage: dict[str, Any],
                     error: str | None) -> None:
        """The step ended: its verdict, figures and, when it failed, why and what it said."""
        await self.response.finish()
        self._figures(seconds, usage)
        self._set_status("completed" if ok else "failed", error=error, raw=response)

    async def end(self, status: str) -> None:
        """The run ended while this step was still running (stopped, interrupted or failed)."""
        if self.status != "running":
            return
        await self.response.finish()
        self._set_status(status, error=None, raw=None)

    async def load(self, record: dict[str, Any]) -> None:
        """A stored step, drawn at once."""
        await self.response.load(record.get("response") or "", live=False)
        self._figures(float(record.get("seconds") or 0), record)
        status = "completed" if record.get("ok") else (record.get("status") or "failed")
        if status == "running":
            status = "interrupted"
        self._set_status(status, error=record.get("error"), raw=record.get("response") or "")

    # ---- helpers -------------------------------------------------------------------------------

    def _figures(self, seconds: float, usage: dict[str, Any]) -> None:
        """Tokens in and out, seconds, cost."""
        self.figures.text = usage_text(int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0),
                                       float(usage.get("cost_usd") or 0), seconds=seconds)

    def _set_status(self, status: str, *, error: str | None, raw: str | None) -> None:
        """Swap the spinner for the status icon; a failed step gets a red border, its error and raw output."""
        self.status = status
        self.icon_slot.clear()
        icon, colour = STATUS_ICONS.get(status, ("help", "grey"))
        with self.icon_slot:
            ui.icon(icon, color=colour, size="1.2em").mark(f"step-icon-{status}")
        self.status_label.text = {"completed": "done"}.get(status, status)
        if status == "completed":
            return
        self.status_label.classes("text-negative" if status == "failed" else "text-warning")
        if status == "failed":
            self.problem.set_visibility(True)
            self.box.classes(remove="border-l-4 border-gray-400/60", add="border-2 border-red-500")
            with self.problem:
                if error:
                    ui.label(f"Error: {error}").classes("text-negative text-sm").mark("step-error")
                if raw is not None:
                    ui.label("Raw output").classes("text-xs opacity-70")
                    ui.label(raw or "(empty)").classes(
                        "font-mono text-xs whitespace-pre-wrap w-full p-2 rounded bg-red-500/10").mark("raw-output")
