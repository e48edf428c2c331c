"""The Studio page: a brief, live progress per deliverable, then Draft → Amend → Approve → Export."""

from __future__ import annotations

import asyncio
import io
import zipfile
from typing import Any

from nicegui import ui

from app.auth import current_user_id
from app.context import Lantern
from app.pages.run_page import draw_page, follow, register_pair
from app.urls import url
from components.studio_views import DeliverableCard, ProgressRow, show_envelope
from services.core.errors import Conflict, LanternError
from services.core.events import Done, Event, ProviderFallback, StepFinished, StepStarted
from services.core.usage import usage_text
from services.studio.kind import DELIVERABLES
from services.studio.modules import KINDS, MODULES
from storage import runs as run_repo
from storage.models import Run

PLATFORMS = ["LinkedIn", "X", "Instagram", "Facebook", "Email", "Blog", "YouTube", "TikTok"]
TEXT_FIELDS = (("brand", "Brand *"), ("product", "Product *"), ("audience", "Audience *"), ("goal", "Goal *"),
               ("tone", "Tone"))


def register(lantern: Lantern) -> None:
    """Routes: a new generation and a stored one."""
    register_pair(lantern, DELIVERABLES, StudioPage)


class StudioPage:
    """One tab's view of one generation and its deliverables."""

    def __init__(self, lantern: Lantern, run_id: str | None) -> None:
        self.lantern = lantern
        self.run_id = run_id
        self.running = False
        self.rows: dict[int, ProgressRow] = {}
        self.cards: list[DeliverableCard] = []
        self.rewrites: dict[str, str] = {}  # deliverable id → the run id of its rewrite in progress (for Stop)
        self.early_stops: set[str] = set()  # deliverable ids whose Stop came while their rewrite was being admitted

    async def build(self) -> None:
        """Draw the brief form, progress and deliverables; re-attach to a running generation."""
        run = await draw_page(self.lantern, DELIVERABLES, self.run_id, self._draw)
        if run is not None:
            self._follow(run.id, _row_titles(run.config))

    async def _draw(self, run: Run | None) -> None:
        """The brief form, progress, notes and an empty list of deliverables."""
        self._form(run.config if run else {})
        self.progress_label = ui.label("").classes("text-sm opacity-70").mark("progress-label")
        self.progress = ui.linear_progress(value=0, show_value=False) \
            .props("rounded animation-speed=200").mark("progress")
        self.progress.set_visibility(False)
        self.rows_area = ui.column().classes("w-full gap-1").mark("progress-rows")
        self.notes = ui.column().classes("w-full gap-1").mark("fallback-notes")
        self.summary = ui.column().classes("w-full")
        with ui.row().classes("w-full items-center") as self.toolbar:
            ui.label("Deliverables").classes("text-lg font-semibold")
            ui.space()
            ui.button("Export all approved (.zip)", icon="folder_zip", on_click=self.export_all) \
                .props("outline dense").mark("export-all")
        self.toolbar.set_visibility(False)
        self.deliverables = ui.column().classes("w-full gap-4").mark("deliverables")

    def _form(self, config: dict[str, Any]) -> None:
        """Brief fields, module (with what it produces), model, Generate."""
        brief = config.get("brief") or {}
        with ui.card().classes("w-full gap-2"):
            self.fields: dict[str, ui.input] = {}
            with ui.grid(columns=2).classes("w-full gap-2"):
                for key, label in TEXT_FIELDS:
                    self.fields[key] = ui.input(label, value=brief.get(key, "")).props("outlined dense").mark(key)
                self.platforms = ui.select(PLATFORMS, multiple=True, value=brief.get("platforms") or [],
                                           label="Platforms").props("outlined dense use-chips").mark("platforms")
            self.brief_notes = ui.textarea("Notes", value=brief.get("notes", "")) \
                .props("autogrow outlined dense").classes("w-full").mark("notes")
            modules = {name: f"{name} — {', '.join(KINDS[k].title for k in kinds)}" for name, kinds in MODULES.items()}
            models = [m.id for m in self.lantern.registry.list_models() if m.available]
            default = (config.get("chain") or [self.lantern.registry.default_model])[0]
            with ui.row().classes("w-full items-end gap-2"):
                self.module = ui.select(modules, value=config.get("module") or next(iter(modules)), label="Module") \
                    .classes("min-w-96").props("outlined dense").mark("module")
                self.model = ui.select(models, value=default if default in models else None, label="Model") \
                    .classes("min-w-56").props("outlined dense").mark("model")
                self.generate_button = ui.button("Generate", icon="auto_awesome", on_click=self.generate) \
                    .mark("generate")
            self.form_error = ui.label("").classes("text-red-600").mark("form-error")
            self.form_error.set_visibility(False)

    # ---- generating ----------------------------------------------------------------------------

    async def generate(self) -> None:
        """Validate and start; errors are shown and nothing starts."""
        if self.running:
            ui.notify("A generation is still running.", type="warning")
            return
        brief: dict[str, Any] = {key: (field.value or "").strip() for key, field in self.fields.items()}
        brief["platforms"] = list(self.platforms.value or [])
        brief["notes"] = (self.brief_notes.value or "").strip()
        brief = {k: v for k, v in brief.items() if v or k in ("brand", "product", "audience", "goal")}
        try:
            active = await self.lantern.studio.start(user_id=current_user_id(), module=self.module.value or "",
                                                     brief=brief, model=self.model.value or None)
        except LanternError as exc:
            self.form_error.text = f"Not started: {exc}"
            self.form_error.set_visibility(True)
            ui.notify(str(exc), type="negative", multi_line=True)
            return
        self.form_error.set_visibility(False)
        self.run_id = active.run.id
        ui.navigate.history.replace(url(f"/studio/{active.run.id}"))
        self._follow(active.run.id, _row_titles(active.run.config))

    def _follow(self, run_id: str, titles: list[str]) -> None:
        """One progress row per deliverable the run writes, filled from its events (replayed, then live)."""
        self.running = True
        self.generate_button.set_enabled(False)
        self.rows_area.clear()
        self.notes.clear()
        self.summary.clear()
        self.deliverables.clear()
        self.toolbar.set_visibility(False)
        with self.rows_area:
            self.rows = {i: ProgressRow(index=i, title=title) for i, title in enumerate(titles)}
        self.progress.set_visibility(True)
        self._show_progress("running")
        # Read here: the background task has no page context, so it could not tell who is asking (shared mode).
        user_id = current_user_id()
        status = "running"

        async def on_event(event: Event) -> None:
            nonlocal status
            match event:
                case StepStarted(index=index):
                    if (row := self.rows.get(index)) is not None:
                        row.writing()
                case StepFinished(index=index, ok=ok, error=error):
                    if (row := self.rows.get(index)) is not None:
                        row.finished(ok=ok, error=error)
                case ProviderFallback(from_=source, to=target, reason=reason):
                    with self.notes:
                        ui.label(f"↪ {source} failed: {reason}, trying {target}") \
                            .classes("text-sm text-amber-700").mark("fallback-note")
                case Done(status=done):
                    status = done
            self._show_progress(status)

        async def on_end(_status: str | None) -> None:
            """The envelope and cards, from the stored run."""
            self.running = False
            self.generate_button.set_enabled(True)
            run = await self.lantern.db.call(run_repo.get_run, run_id=run_id, user_id=user_id)
            await self._show_result((run.result if run else None) or {}, run.status if run else status,
                                    _usage(run) if run else "", user_id)

        follow(self.lantern, run_id, on_event, container=self.rows_area, on_end=on_end, name=f"studio-{run_id}")

    async def _show_result(self, envelope: dict[str, Any], status: str, usage: str, user_id: str) -> None:
        """The envelope summary and one card per deliverable, drawn from the database (with versions)."""
        self._show_progress(status)
        if not envelope:
            with self.summary:
                ui.label(f"This generation ended as {status} without a result" + (f" · {usage}" if usage else "")) \
                    .mark("no-result")
            return
        with self.summary:
            show_envelope(envelope, usage=usage)
        self.cards = []
        for out in envelope.get("deliverables") or []:
            try:
                item = await self.lantern.studio.get(user_id=user_id, deliverable_id=out["id"])
            except LanternError as exc:
                with self.deliverables:
                    ui.label(f"{out.get('title', out['id'])}: {exc}").classes("text-red-600")
                continue
            with self.deliverables:
                card = DeliverableCard(item, amend=self._amend, approve=self._approve, export_check=self._refusal,
                                       regenerate=self._regenerate, stop_regenerate=self._stop_regenerate)
            await card.show()
            self.cards.append(card)
        self.toolbar.set_visibility(bool(self.cards))

    def _show_progress(self, status: str) -> None:
        """Deliverables done / total and the bar."""
        total = len(self.rows)
        finished = sum(1 for r in self.rows.values() if r.state in ("done", "failed"))
        self.progress.value = finished / total if total else 0
        self.progress_label.text = f"{finished} / {total} deliverables · {status}"

    # ---- deliverable actions -------------------------------------------------------------------

    async def _studio(self, method: str, **kwargs: Any) -> Any:
        """Call the studio service as the current user."""
        return await getattr(self.lantern.studio, method)(user_id=current_user_id(), **kwargs)

    async def _amend(self, deliverable_id: str, text: str) -> dict[str, Any]:
        return dict(await self._studio("amend", deliverable_id=deliverable_id, content=text))

    async def _regenerate(self, deliverable_id: str, instruction: str) -> dict[str, Any]:
        """Rewrite as a run of its own (admitted, counted in History, stoppable); say what it used."""
        user_id = current_user_id()
        self.early_stops.discard(deliverable_id)
        active = await self.lantern.studio.start_regenerate(user_id=user_id, deliverable_id=deliverable_id,
                                                            instruction=instruction)
        self.rewrites[deliverable_id] = active.id
        try:
            if deliverable_id in self.early_stops:  # after its first event: a run cancelled unbegun never ends
                await self.lantern.runs.follow(active.id).next()
                await self.lantern.runs.stop(active.id)
            updated = await self.lantern.studio.regenerated(user_id=user_id, active=active)
        finally:
            self.rewrites.pop(deliverable_id, None)
            self.early_stops.discard(deliverable_id)
        run = await self.lantern.db.call(run_repo.get_run, run_id=active.id, user_id=user_id)
        ui.notify(f"Regenerated as version {updated['versions'][-1]['version']} · {_usage(run) if run else ''}",
                  type="positive")
        return dict(updated)

    async def _stop_regenerate(self, deliverable_id: str) -> None:
        """Stop the deliverable's rewrite now, or as soon as its run exists."""
        if (run_id := self.rewrites.get(deliverable_id)) is not None:
            await self.lantern.runs.stop(run_id)
        else:
            self.early_stops.add(deliverable_id)

    async def _approve(self, deliverable_id: str) -> dict[str, Any]:
        return dict(await self._studio("approve", deliverable_id=deliverable_id))

    async def _refusal(self, deliverable_id: str) -> str | None:
        """Why this deliverable cannot be exported yet, or None."""
        try:
            await self._studio("export", deliverable_id=deliverable_id, fmt="md")
        except Conflict as exc:
            return str(exc)
        return None

    async def export_all(self) -> None:
        """A zip with the .md and .json of every approved deliverable of this generation."""
        files: list[tuple[str, str]] = []
        for card in self.cards:
            if card.approved:
                for fmt in ("md", "json"):
                    text, name = await self._studio("export", deliverable_id=card.id, fmt=fmt)
                    files.append((name, text))
        if not files:
            ui.notify("Nothing approved yet: approve at least one deliverable first.", type="warning")
            return
        data = await asyncio.to_thread(_zip, files)
        ui.download(data, f"studio-{(self.run_id or '')[:8]}.zip", media_type="application/zip")


def _row_titles(config: dict[str, Any]) -> list[str]:
    """What the run writes, one title a row: the module's deliverables, or the one a rewrite rewrites."""
    if rewrite := config.get("regenerate"):
        return [f"Rewrite: {KINDS[rewrite['kind']].title}" if rewrite.get("kind") in KINDS else "Rewrite"]
    return [KINDS[k].title for k in MODULES.get(config.get("module", ""), ())]


def _usage(run: Run) -> str:
    """The run's stored tally, worded as History and the API report it."""
    return usage_text(run.input_tokens, run.output_tokens, run.cost_usd)


def _zip(files: list[tuple[str, str]]) -> bytes:
    """The files as an in-memory zip (worker thread)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files:
            archive.writestr(name, text)
    return buffer.getvalue()
