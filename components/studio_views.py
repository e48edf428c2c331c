"""Studio widgets: live progress per deliverable, the envelope summary, and a deliverable's life card."""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

from components.streaming_markdown import StreamingMarkdown
from services.core.errors import LanternError

STATUS_COLOURS = {"SUCCESS": "positive", "PARTIAL": "warning", "FAILED": "negative"}
ROW_ICONS = {"waiting": ("schedule", "text-gray-500"), "done": ("check_circle", "text-green-600"),
             "failed": ("error", "text-red-600")}


class ProgressRow:
    """One deliverable of the module while it is generated: waiting → writing → done / failed."""

    def __init__(self, *, index: int, title: str) -> None:
        self.state = "waiting"
        with ui.row().classes("w-full items-center gap-3 no-wrap px-3 py-1 rounded bg-gray-500/5") \
                .mark("progress-row", f"progress-row-{index}"):
            self.slot = ui.row().classes("items-center w-6")
            ui.label(f"{index + 1}. {title}").classes("flex-grow")
            self.status = ui.label("waiting").classes("text-sm opacity-80").mark("row-status")
        self.error = ui.label("").classes("text-sm text-red-600 pl-12").mark("row-error")
        self.error.set_visibility(False)
        self._icon()

    def writing(self) -> None:
        """The model is writing this one."""
        self.state = "writing"
        self.status.text = "writing…"
        self._icon()

    def finished(self, *, ok: bool, error: str | None) -> None:
        """Done, or failed with the reason."""
        self.state = "done" if ok else "failed"
        self.status.text = self.state
        if not ok:
            self.error.text = error or "failed"
            self.error.set_visibility(True)
        self._icon()

    def _icon(self) -> None:
        self.slot.clear()
        with self.slot:
            if self.state == "writing":
                ui.spinner(size="sm")
            else:
                name, colour = ROW_ICONS[self.state]
                ui.icon(name).classes(f"text-xl {colour}")


def show_envelope(envelope: dict[str, Any], *, usage: str) -> None:
    """Status badge, who answered, the run's usage, warnings; for FAILED the error and its trace id.

    `usage` is the run's own tally as History shows it (services/core/usage.py `usage_text`), not the envelope's
    `tokens_used`: a person must read one figure for one run wherever they look.
    """
    status = envelope.get("status", "FAILED")
    meta = envelope.get("meta") or {}
    with ui.card().classes("w-full gap-2").mark("envelope"):
        with ui.row().classes("items-center gap-3"):
            ui.badge(status, color=STATUS_COLOURS.get(status, "grey")).classes("text-base px-3 py-1") \
                .mark("envelope-status")
            who = "/".join(p for p in (meta.get("provider"), meta.get("model")) if p) or "no provider answered"
            ui.label(f"{who} · {usage} · trace {meta.get('trace_id', '')}").classes("text-sm opacity-80").mark("meta")
        if error := envelope.get("error"):
            ui.label(f"Generation failed ({error.get('type')}): {error.get('message')}") \
                .classes("text-red-600").mark("envelope-error")
            ui.label(f"Trace id: {error.get('trace_id')} — quote it when you report the problem.") \
                .classes("text-sm opacity-80").mark("trace-id")
        warnings = meta.get("warnings") or []
        if warnings:
            ui.label("Warnings").classes("text-sm font-semibold")
            for warning in warnings:
                ui.label(f"⚠ {warning}").classes("text-sm text-amber-700").mark("warning")


class DeliverableCard:
    """Draft (rendered) → Amend (editor, versions, diff) → Approve (locks) → Export (only when approved)."""

    def __init__(self, item: dict[str, Any], *, amend: Callable[[str, str], Awaitable[dict[str, Any]]],
                 approve: Callable[[str], Awaitable[dict[str, Any]]],
                 export_check: Callable[[str], Awaitable[str | None]],
                 regenerate: Callable[[str, str], Awaitable[dict[str, Any]]] | None = None,
                 stop_regenerate: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.item = item
        self._amend, self._approve, self._export_check = amend, approve, export_check
        self._regenerate, self._stop_regenerate = regenerate, stop_regenerate
        with ui.card().classes("w-full gap-2").mark("deliverable", f"deliverable-{item['kind']}"):
            with ui.row().classes("w-full items-center gap-2"):
                ui.label(item["title"]).classes("text-lg font-semibold").mark("deliverable-title")
                ui.label(f"{item['kind']} · {item['platform']}").classes("text-xs opacity-60")
                ui.space()
                self.badge = ui.badge("").mark("status-badge")
            self.draft = StreamingMarkdown(live=False).mark("draft")
            with ui.row().classes("gap-1"):
                for tag in item.get("hashtags") or []:
                    ui.chip(f"#{tag.lstrip('#')}").props("dense outline").mark("hashtag")
            with ui.expansion("Amend", icon="edit").classes("w-full").props("dense").mark("amend"):
                self.editor = ui.textarea("Markdown").props("autogrow outlined").classes("w-full").mark("editor")
                with ui.row().classes("items-center gap-2"):
                    self.save = ui.button("Save as new version", icon="save", on_click=self._save) \
                        .props("outline dense").mark("save")
                if regenerate is not None:
                    with ui.row().classes("w-full items-center gap-2 no-wrap"):
                        self.instruction = ui.input("Regenerate with an instruction", placeholder="e.g. shorter") \
                            .props("dense outlined").classes("flex-grow").mark("instruction")
                        self.regen = ui.button("Regenerate", icon="autorenew", on_click=self._regenerate_now) \
                            .props("outline dense").mark("regenerate")
                        self.regen_stop = ui.button("Stop", icon="stop", on_click=self._stop_now) \
                            .props("outline dense color=negative").mark("regenerate-stop")
                        self.regen_stop.set_visibility(False)
                ui.label("Versions").classes("text-sm font-semibold")
                self.versions = ui.column().classes("w-full gap-1").mark("versions")
                self.diff = ui.column().classes("w-full gap-0 font-mono text-xs").mark("diff")
            with ui.row().classes("items-center gap-2"):
                self.approve_button = ui.button("Approve", icon="verified", on_click=self._approve_now) \
                    .props("dense").mark("approve")
                for fmt, label in (("md", "Export .md"), ("json", "Export .json")):
                    ui.button(label, icon="download", on_click=lambda f=fmt: self._export(f)) \
                        .props("flat dense").mark(f"export-{fmt}")
                self.export_note = ui.label("").classes("text-sm text-red-600").mark("export-refused")
                self.export_note.set_visibility(False)

    @property
    def id(self) -> str:
        """The deliverable id."""
        return str(self.item["id"])

    @property
    def approved(self) -> bool:
        """Whether a version is approved (and the card locked)."""
        return self.item.get("status") == "approved"

    async def show(self, item: dict[str, Any] | None = None) -> None:
        """Draw the deliverable's current state: latest text, badge, editor lock, version history."""
        self.item = item or self.item
        versions = self.item.get("versions") or []
        latest: dict[str, Any] = versions[-1] if versions else {"version": 0, "content_markdown": ""}
        await self.draft.load(latest["content_markdown"], live=False)
        if self.approved:
            self.badge.text, self.badge.props["color"] = f"approved v{self.item['approved_version']}", "positive"
        else:
            self.badge.text, self.badge.props["color"] = f"draft v{latest['version']}", "grey"
        self.badge.update()
        self.editor.value = latest["content_markdown"]
        for element in (self.editor, self.save, self.approve_button, *self._regen_controls()):
            element.set_enabled(not self.approved)
        self.versions.clear()
        with self.versions:
            for i, version in enumerate(versions):
                with ui.row().classes("items-center gap-2 text-sm").mark("version-row"):
                    ui.label(f"v{version['version']} · {version.get('note') or ''} · "
                             f"{str(version.get('created_at', ''))[:19].replace('T', ' ')}")
                    if i:
                        ui.button("Diff", on_click=lambda a=versions[i - 1], b=version: self._show_diff(a, b)) \
                            .props("flat dense size=sm").mark(f"diff-v{version['version']}")

    async def _save(self) -> None:
        text = self.editor.value or ""
        if text == ((self.item.get("versions") or [{}])[-1].get("content_markdown")):
            ui.notify("Nothing changed: edit the text first.")
            return
        try:
            updated = await self._amend(self.id, text)
        except LanternError as exc:  # say it, keep the editor's text
            ui.notify(str(exc), type="negative")
            return
        await self.show(updated)
        versions = updated["versions"]
        if len(versions) > 1:
            self._show_diff(versions[-2], versions[-1])
        ui.notify(f"Saved version {versions[-1]['version']}.", type="positive")

    def _regen_controls(self) -> list[ui.input | ui.button]:
        """The instruction box and its button, when regeneration is offered."""
        return [self.instruction, self.regen] if self._regenerate is not None else []

    async def _regenerate_now(self) -> None:
        """Rewrite this deliverable following the instruction; the result is a new version."""
        instruction = (self.instruction.value or "").strip()
        if not instruction or self._regenerate is None:
            ui.notify("Say how it should change first.")
            return
        self._regenerating(True)
        try:
            updated = await self._regenerate(self.id, instruction)
        except LanternError as exc:  # a stop is what the person asked for: say so, not as a failure
            ui.notify(str(exc), type="warning" if exc.kind == "stopped" else "negative", multi_line=True)
            return
        finally:
            self._regenerating(False)
        await self.show(updated)
        versions = updated["versions"]
        self._show_diff(versions[-2], versions[-1])
        self.instruction.value = ""

    async def _stop_now(self) -> None:
        """Stop the rewrite in progress (the deliverable keeps its current version)."""
        if self._stop_regenerate is not None:
            await self._stop_regenerate(self.id)

    def _regenerating(self, running: bool) -> None:
        """While a rewrite runs: a spinning Regenerate and a Stop beside it."""
        if self.regen.is_deleted:
            return
        if running:
            self.regen.props("loading")
        else:
            self.regen.props(remove="loading")
        self.regen_stop.set_visibility(running and self._stop_regenerate is not None)

    async def _approve_now(self) -> None:
        try:
            updated = await self._approve(self.id)
        except LanternError as exc:
            ui.notify(str(exc), type="negative")
            return
        self.export_note.set_visibility(False)
        await self.show(updated)
        ui.notify(f"Approved version {updated['approved_version']}: it is locked.", type="positive")

    async def _export(self, fmt: str) -> None:
        """Download the approved version; before approval, say why not."""
        refusal = await self._export_check(self.id)
        if refusal:
            self.export_note.text = f"Export refused: {refusal}"
            self.export_note.set_visibility(True)
            ui.notify(refusal, type="warning")
            return
        ui.download(f"/api/deliverables/{self.id}/export?format={fmt}")

    def _show_diff(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        """Unified diff of two versions; every line is a label, so content is never interpreted as HTML."""
        self.diff.clear()
        lines = diff_lines(before["content_markdown"], after["content_markdown"],
                           f"v{before['version']}", f"v{after['version']}")
        with self.diff:
            ui.label(f"Changes from v{before['version']} to v{after['version']}").classes("text-sm font-semibold")
            for line in lines or ["(no changes)"]:
                colour = "text-green-700" if line.startswith("+") else "text-red-700" \
                    if line.startswith("-") else "opacity-70"
                ui.label(line).classes(f"whitespace-pre-wrap {colour}").mark("diff-line")


def diff_lines(before: str, after: str, a: str, b: str) -> list[str]:
    """Unified diff lines between two texts."""
    return [line.rstrip("\n") for line in difflib.unified_diff(
        before.splitlines(), after.splitlines(), fromfile=a, tofile=b, lineterm="")]
