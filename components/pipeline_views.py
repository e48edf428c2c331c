"""Pipeline widgets: progress, the outcome (an assessment made readable), the definition editor."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

from components.streaming_markdown import StreamingMarkdown
from services.core.errors import LanternError

SUFFIX = re.compile(r"(?: \(attempt \d+\))?(?: — retry \d+)?$")
EXAMPLE = """\
name: summary-check
description: Summarise a topic, then check the summary.
roles: [writer, checker]
steps:
  - id: summary
    title: Write a summary
    role: writer
    prompt: Summarise {topic} in five sentences.
  - id: check
    title: Check the summary
    role: checker
    output: json
    fields: {accurate: bool, notes: str}
    prompt: |
      Is this summary of {topic} accurate? Say what is wrong, if anything.
      {steps.summary}
"""


class StepProgress:
    """Steps done of the definition's total; loops and retries add model calls beyond it."""

    def __init__(self, steps: list[dict[str, Any]]) -> None:
        self.titles = [s.get("title", "") for s in steps]
        self.ids = [s.get("id", "") for s in steps]
        self.total = len(steps)
        self.done = 0
        self.calls = 0
        self.attempt = 1
        self._position: int | None = None

    def started(self, *, title: str | None = None, step_id: str | None = None) -> None:
        """A step (or a retry, or a loop back to an earlier step) began."""
        self.calls += 1
        if step_id in self.ids:
            position: int | None = self.ids.index(step_id)
        else:
            base = SUFFIX.sub("", title or "", count=1)
            position = self.titles.index(base) if base in self.titles else None
        if position is None:
            return
        if self._position is not None and position < self._position:
            self.attempt += 1  # the pipeline looped back for another attempt
        self._position = position
        self.done = min(self.done, position)

    def finished(self, ok: bool) -> None:
        """The current step ended."""
        if ok and self._position is not None:
            self.done = max(self.done, self._position + 1)

    @property
    def fraction(self) -> float:
        """Done as 0..1."""
        return min(self.done / self.total, 1.0) if self.total else 0.0

    def label(self, status: str | None = None) -> str:
        """e.g. '3 / 5 steps (60%) · 8 model calls · attempt 2 · running'."""
        parts = [f"{self.done} / {self.total} steps ({round(self.fraction * 100)}%)"]
        if self.calls > self.done:
            parts.append(f"{self.calls} model calls")
        if self.attempt > 1:
            parts.append(f"attempt {self.attempt}")
        if status:
            parts.append(status)
        return " · ".join(parts)


async def show_outcome(outcome: dict[str, Any] | None, *, status: str) -> None:
    """The final result: a readable assessment (or text/JSON) plus raw JSON, or why there is none."""
    outcome = outcome or {}
    result = outcome.get("result")
    if not outcome.get("ok"):
        reason = outcome.get("reason") or status
        with ui.card().classes("w-full border-l-4 border-orange-500").mark("outcome"):
            with ui.row().classes("items-center gap-2 no-wrap"):
                ui.icon("stop_circle" if status == "stopped" else "report", color="warning", size="1.5em")
                ui.label("No result" if status != "stopped" else "Stopped").classes("text-lg font-semibold")
            ui.label(_why(reason, status)).classes("whitespace-pre-wrap").mark("outcome-reason")
        return
    with ui.card().classes("w-full gap-3 border-l-4 border-green-500").mark("outcome"):
        if isinstance(result, dict) and {"title", "code"} <= set(result):
            await _assessment(result)
        elif isinstance(result, str):
            await StreamingMarkdown(live=False).mark("outcome-text").load(result, live=False)
        with ui.expansion("Result as JSON", icon="data_object", value=not isinstance(result, (dict, str))) \
                .classes("w-full").props("dense"):
            raw = json.dumps(result, indent=2, ensure_ascii=False)
            await StreamingMarkdown(live=False).mark("outcome-json").load(f"```json\n{raw}\n```", live=False)


class DefinitionEditor:
    """Paste a YAML/JSON pipeline, validate and save it; problems are shown under the text."""

    def __init__(self, *, save: Callable[[str], Awaitable[Any]], saved: Callable[[str], Awaitable[None]]) -> None:
        self._save = save
        self._saved = saved
        with ui.expansion("Your pipelines", icon="edit_note").classes("w-full").mark("your-pipelines"):
            ui.label("Paste a pipeline as YAML or JSON: name, roles and steps; prompts use {topic}, "
                     "{steps.<id>} and {steps.<id>.<field>} of earlier steps.").classes("text-sm opacity-70")
            self.text = ui.textarea(placeholder=EXAMPLE).props("outlined autogrow input-class=font-mono") \
                .classes("w-full").mark("definition")
            with ui.row().classes("items-center gap-2"):
                ui.button("Validate & save", icon="check", on_click=self.submit).mark("save-definition")
                ui.button("Insert example", icon="content_paste", on_click=self._example).props("flat")
            self.message = ui.label("").classes("text-sm whitespace-pre-wrap").mark("definition-message")

    async def submit(self) -> None:
        """Validate and save; the error names the line or field at fault."""
        try:
            spec = await self._save(self.text.value or "")
        except LanternError as exc:
            self.message.text = "Not saved:\n" + "\n".join(f"• {p}" for p in str(exc).split("; "))
            self.message.classes(replace="text-sm whitespace-pre-wrap text-negative")
            return
        self.message.text = f"Saved “{spec.name}”: {len(spec.steps)} steps, roles {', '.join(spec.roles)}."
        self.message.classes(replace="text-sm whitespace-pre-wrap text-positive")
        await self._saved(spec.name)

    def _example(self) -> None:
        """Fill in a small working pipeline to start from."""
        self.text.value = EXAMPLE


# ---- helpers -----------------------------------------------------------------------------------

async def _assessment(result: dict[str, Any]) -> None:
    """Title, difficulty, the code and the errors a reader must find."""
    with ui.row().classes("items-center gap-2"):
        ui.label(str(result.get("title", ""))).classes("text-xl font-semibold").mark("outcome-title")
        if result.get("difficulty"):
            ui.badge(str(result["difficulty"]), color="primary").mark("outcome-difficulty")
    code = str(result.get("code", "")).strip("\n")
    fence = "````" if "```" in code else "```"
    await StreamingMarkdown(live=False).mark("outcome-code").load(f"{fence}\n{code}\n{fence}", live=False)
    errors = result.get("errors") or []
    ui.label(f"Errors to find ({len(errors)})").classes("font-semibold")
    for i, error in enumerate(errors):
        item = error if isinstance(error, dict) else {"description": error}
        with ui.row().classes("items-start gap-2 no-wrap").mark("outcome-error"):
            ui.badge(str(item.get("id") or f"E{i + 1}"), color="negative").classes("font-mono")
            ui.label(str(item.get("description", ""))).classes("flex-1")


def _why(reason: str, status: str) -> str:
    """A failed or stopped run explained."""
    if status == "stopped":
        return "The run was stopped; the steps so far are kept below."
    if status == "interrupted":
        return "The run was interrupted (the server stopped); the steps so far are kept below."
    return reason


def compare_runs(a: Any, b: Any, *, ids: tuple[str, str]) -> None:
    """Two stored runs side by side, aligned step by step; differing prompts and responses flagged."""
    missing = [run_id or "(none given)" for run_id, run in zip(ids, (a, b), strict=True) if run is None]
    if missing:
        ui.label(f"Pipeline run not found: {', '.join(missing)}.").classes("text-lg").mark("not-found")
        ui.label("Open a run and choose “Compare with…” to pick two of your runs.").classes("opacity-70")
        ui.link("Back to Pipelines", "/pipelines")
        return
    with ui.row().classes("w-full no-wrap gap-4 items-stretch"):
        for side, run in (("a", a), ("b", b)):
            _run_header(run, side)
    steps = [(run.result or {}).get("steps") or [] for run in (a, b)]
    for i in range(max(len(steps[0]), len(steps[1]))):
        pair = [s[i] if i < len(s) else None for s in steps]
        with ui.row().classes("w-full no-wrap gap-4 items-stretch").mark(f"compare-row compare-row-{i}"):
            for mine, other in ((pair[0], pair[1]), (pair[1], pair[0])):
                with ui.column().classes("flex-1 min-w-0"):
                    _compare_cell(i, mine, other)
    with ui.row().classes("w-full no-wrap gap-4 items-stretch"):
        for run in (a, b):
            outcome = (run.result or {}).get("outcome") or {}
            result = outcome.get("result")
            text = (f"Result: {result.get('title')}" if isinstance(result, dict) and result.get("title")
                    else "Result ready" if outcome.get("ok") else f"No result: {outcome.get('reason') or run.status}")
            ui.label(text).classes("flex-1 min-w-0 text-sm font-semibold").mark("compare-outcome")


def _run_header(run: Any, side: str) -> None:
    """Which run this column shows."""
    config = run.config or {}
    with ui.card().classes("flex-1 min-w-0 gap-1").mark(f"compare-{side}"):
        ui.link(config.get("topic") or run.id, f"/pipelines/{run.id}").classes("text-lg font-semibold")
        started = run.started_at.strftime("%Y-%m-%d %H:%M") if run.started_at else ""
        ui.label(f"{config.get('pipeline', '')} · {run.status} · {started}").classes("text-sm opacity-70")
        models = ", ".join(f"{role}: {model}" for role, model in (config.get("models") or {}).items())
        ui.label(models).classes("text-xs font-mono opacity-70")
        ui.label(f"{run.input_tokens} → {run.output_tokens} tokens · ${run.cost_usd:.4f}").classes("text-xs")


def _compare_cell(index: int, mine: dict[str, Any] | None, other: dict[str, Any] | None) -> None:
    """One side of an aligned step."""
    if mine is None:
        ui.label(f"{index + 1}. — no such step in this run").classes("opacity-60 italic").mark("compare-missing")
        return
    border = "border-green-500/60" if mine.get("ok") else "border-red-500"
    with ui.card().classes(f"w-full gap-1 border-l-4 {border}").mark("compare-step"):
        ui.label(f"{index + 1}. {mine.get('title', '')}").classes("font-semibold")
        ui.label(f"{mine.get('model', '')} · {float(mine.get('seconds') or 0):.1f} s · "
                 f"{mine.get('input_tokens', 0)} → {mine.get('output_tokens', 0)} tokens · "
                 f"{mine.get('status', '')}").classes("text-xs opacity-70")
        with ui.row().classes("gap-1"):
            for key in ("prompt", "response"):
                if other is not None and (mine.get(key) or "") != (other.get(key) or ""):
                    ui.badge(f"{key} differs", color="orange").mark(f"differs-{key}")
        for key, icon in (("prompt", "input"), ("response", "output")):
            with ui.expansion(key.title(), icon=icon).classes("w-full").props("dense"):
                ui.label(mine.get(key) or "(empty)").classes("font-mono text-xs whitespace-pre-wrap w-full") \
                    .mark(f"compare-{key}")
        if mine.get("error"):
            ui.label(f"Error: {mine['error']}").classes("text-negative text-xs")
