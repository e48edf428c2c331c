"""Duet widgets: a bot's settings panel, one turn of the transcript, a change note and the run's summary."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

from components.streaming_markdown import StreamingMarkdown

COLOURS = ("border-blue-500", "border-emerald-500")
STEERABLE = ("system_prompt", "temperature", "model")


class BotPanel:
    """Name, model, system prompt, temperature and max tokens of one bot; steerable while running."""

    def __init__(self, *, index: int, agent: dict[str, Any], models: list[str],
                 on_apply: Callable[[int, dict[str, Any]], Awaitable[None]]) -> None:
        self.index = index
        self._on_apply = on_apply
        with ui.card().classes(f"flex-1 border-l-4 {COLOURS[index]}").mark(f"bot-{index}"):
            ui.label(f"Bot {'AB'[index]}").classes("text-xs opacity-60")
            self.name_input = ui.input("Name", value=agent.get("name", "")).classes("w-full").mark(f"name-{index}")
            model = agent.get("model") or (models[0] if models else None)
            # A bot's model that no list offers (a default the server does not list, a model since removed) stays
            # chosen: silently swapping it for the first model would run a different bot than the one configured.
            options = models if model is None or model in models else [model, *models]
            self.model = ui.select(options, value=model, label="Model").classes("w-full").props("dense") \
                .mark(f"model-{index}")
            self.system = ui.textarea("System prompt", value=agent.get("system_prompt", "")) \
                .props("autogrow").classes("w-full").mark(f"system-{index}")
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                ui.label("Temperature").classes("text-sm")
                self.temperature = ui.slider(min=0, max=2, step=0.1, value=agent.get("temperature", 0.7)) \
                    .props("label-always").classes("flex-grow").mark(f"temperature-{index}")
            self.max_tokens = ui.number("Max tokens per turn", value=agent.get("max_tokens") or 256, min=1,
                                        precision=0).classes("w-full")
            self.apply = ui.button("Apply from next turn", icon="tune", on_click=self._apply) \
                .props("outline dense").mark(f"apply-{index}")
            self.apply.set_visibility(False)
        self._applied = self._steerable()

    @property
    def name(self) -> str:
        """The bot's name as typed."""
        return (self.name_input.value or "").strip()

    def config(self) -> dict[str, Any]:
        """The bot as the duet service takes it."""
        return {"name": self.name, "model": self.model.value or "", "system_prompt": self.system.value or "",
                "temperature": float(self.temperature.value or 0), "max_tokens": int(self.max_tokens.value or 256)}

    def fill(self, agent: dict[str, Any]) -> None:
        """Show a saved bot."""
        self.name_input.value = agent.get("name", "")
        self.model.value = agent.get("model", self.model.value)
        self.system.value = agent.get("system_prompt", "")
        self.temperature.value = agent.get("temperature", 0.7)
        self.max_tokens.value = agent.get("max_tokens") or 256

    def set_running(self, running: bool) -> None:
        """While running, only the steerable fields stay editable, applied with the button."""
        self.name_input.set_enabled(not running)
        self.max_tokens.set_enabled(not running)
        self.apply.set_visibility(running)
        if running:
            self._applied = self._steerable()

    async def _apply(self) -> None:
        changes = {k: v for k, v in self._steerable().items() if self._applied.get(k) != v}
        if not changes:
            ui.notify("Nothing changed yet: edit the prompt, temperature or model first.")
            return
        await self._on_apply(self.index, changes)
        self._applied = self._steerable()

    def _steerable(self) -> dict[str, Any]:
        config = self.config()
        return {k: config[k] for k in STEERABLE}


class TurnView:
    """One turn: the bot's name and colour, its text streaming in, then its figures."""

    def __init__(self, *, turn: int, agent: str, index: int, live: bool) -> None:
        with ui.column().classes(f"w-full gap-1 rounded-lg px-4 py-3 border-l-4 {COLOURS[index % 2]} "
                                 "lantern-msg-assistant").mark("turn"):
            ui.label(f"Turn {turn + 1} · {agent}").classes("text-xs font-semibold opacity-80")
            self.body = StreamingMarkdown(live=live)
            self.footer = ui.label("").classes("text-xs opacity-60")

    async def finish(self, *, usage: Any, status: str) -> None:
        """Close the turn with its figures."""
        await self.body.finish()
        parts = [f"{usage.provider}/{usage.model}", f"{usage.output_tokens} tokens"] if usage else []
        if status != "completed":
            parts.append(status)
        self.footer.text = " · ".join(parts)

    async def load(self, turn: dict[str, Any]) -> None:
        """A stored turn."""
        await self.body.load(turn.get("content", ""), live=False)
        parts = [turn.get("model", ""), f"{turn.get('output_tokens', 0)} tokens", f"{turn.get('seconds', 0):.1f} s"]
        if turn.get("status") not in (None, "completed"):
            parts.append(turn["status"])
        self.footer.text = " · ".join(p for p in parts if p)


def change_note(change: dict[str, Any], *, running: bool) -> ui.label:
    """A note in the transcript that a bot's settings changed, placed before the turn it applies from."""
    return ui.label(change_text(change, running=running)).classes("text-xs italic opacity-70").mark("change")


def change_text(change: dict[str, Any], *, running: bool) -> str:
    """`✎ Grace changed: temperature — from turn 2`; not applied yet: from its next turn, or not used once over."""
    if change.get("before_turn") is not None:
        when = f"from turn {int(change['before_turn']) + 1}"
    else:
        when = "from its next turn" if running else "after its last turn; not used"
    return f"✎ {change.get('agent')} changed: {', '.join(sorted(change.get('changes') or {}))} — {when}"


def summary(turns: int, status: str | None) -> str:
    """`3 turns · stopped`: a turn cut short counts once its bot said something; a completed duet is finished."""
    counted = f"{turns} turn{'' if turns == 1 else 's'}"
    if status is None:
        return counted
    return f"{counted} · {'finished' if status == 'completed' else status}"
