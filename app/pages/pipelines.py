"""The Pipelines page: run a multi-step pipeline and watch every step live; re-open, replay, compare."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi.responses import RedirectResponse
from nicegui import ui

from app.auth import current_user_id
from app.context import Lantern
from app.pages.frame import frame
from app.pages.run_page import draw_page, follow, owned_run, register_pair
from app.urls import url
from components.buttons import icon_button
from components.pipeline_views import DefinitionEditor, StepProgress, compare_runs, show_outcome
from components.step_card import StepCard
from services.core.errors import LanternError
from services.core.events import Done, Event, StepFinished, StepStarted, TextDelta
from services.pipelines.kind import PIPELINE
from storage import runs as run_repo
from storage.models import Run

REPLAY_BATCH = 20  # events drawn per frame when replaying a stored run
REPLAY_PAUSE = 0.05


def register(lantern: Lantern) -> None:
    """Routes: the comparison of two runs, then a new run and a stored one."""

    @ui.page("/pipelines/compare")  # before /pipelines/{run_id}, which would swallow it
    async def compare(a: str = "", b: str = "") -> None:
        runs = [await owned_run(lantern, PIPELINE, x) for x in (a, b)]
        with frame("Compare pipeline runs"):
            compare_runs(*runs, ids=(a, b))

    register_pair(lantern, PIPELINE, PipelinesPage)

    @ui.page("/pipeline/{run_id}")  # the address History gave runs before the registry named their pages
    def by_kind(run_id: str) -> RedirectResponse:
        return RedirectResponse(url(f"/pipelines/{run_id}"))


class PipelinesPage:
    """One tab's view of one pipeline run."""

    def __init__(self, lantern: Lantern, run_id: str | None) -> None:
        self.lantern = lantern
        self.run_id = run_id
        self.running = False
        self.replaying = False
        self.user_id = ""
        self.cards: dict[int, StepCard] = {}
        self.tracker = StepProgress([])

    async def build(self) -> None:
        """Draw the form, the steps and the outcome; re-attach to a running pipeline."""
        # Kept for the background tasks that follow a run: they have no page context to tell who is asking.
        self.user_id = current_user_id()
        run = await draw_page(self.lantern, PIPELINE, self.run_id, self._draw)
        if run is not None:
            await self._show_run(run)

    async def _draw(self, run: Run | None) -> None:
        """The form, the definition editor, the toolbar, and empty steps and outcome."""
        user_id = self.user_id
        config = run.config if run else {}
        names = await self.lantern.pipelines.names(user_id)
        name = config.get("pipeline") or names[0]
        definition = config.get("definition") or (await self.lantern.pipelines.find(user_id, name)) \
            .model_dump(mode="json")
        self.models = [m.id for m in self.lantern.registry.list_models() if m.available]
        self._form(config, [*names, *([name] if name not in names else [])], name, definition)
        DefinitionEditor(save=lambda text: self.lantern.pipelines.save(user_id=user_id, source=text),
                         saved=self._pipeline_saved)
        self._toolbar()
        self.progress_label = ui.label("").classes("text-sm opacity-70").mark("progress-label")
        self.progress = ui.linear_progress(value=0, show_value=False) \
            .props("rounded animation-speed=200").mark("progress")
        self.progress.set_visibility(False)
        self.steps = ui.column().classes("w-full gap-3").mark("steps")
        self.outcome = ui.column().classes("w-full").mark("outcome-area")

    def _form(self, config: dict[str, Any], names: list[str], name: str, definition: dict[str, Any]) -> None:
        """Pipeline, topic, models (a default and one per role), attempts, Run / Stop."""
        default = self.lantern.registry.default_model
        with ui.card().classes("w-full gap-2"):
            with ui.row().classes("w-full items-end gap-2"):
                self.pipeline = ui.select(names, value=name, label="Pipeline", on_change=self._pipeline_changed) \
                    .classes("min-w-48").props("outlined dense").mark("pipeline")
                self.model = ui.select(self.models, value=default if default in self.models else None,
                                       label="Default model").classes("min-w-56").props("outlined dense").mark("model")
                self.max_attempts = ui.number("Max attempts", value=config.get("max_attempts")
                                              or definition.get("max_attempts", 3), min=1, max=10, precision=0) \
                    .props("outlined dense").classes("w-32").mark("max-attempts")
            self.topic = ui.textarea("Topic", value=config.get("topic", "")) \
                .props("autogrow outlined").classes("w-full").mark("topic")
            with ui.expansion("Model per role", icon="tune", value=bool(config)).classes("w-full").props("dense"):
                self.roles_row = ui.row().classes("w-full gap-2")
            self._role_selects(definition.get("roles", []), config.get("models") or {})
            with ui.row().classes("items-center gap-2"):
                self.run_button = ui.button("Run", icon="play_arrow", on_click=self.start).mark("run")
                self.stop_button = icon_button("stop", "Stop (Esc)", self.stop, props="round color=negative",
                                               marker="stop")
                self.stop_button.set_visibility(False)
        ui.keyboard(lambda e: self.stop() if e.key.escape and e.action.keydown else None, ignore=[])

    def _role_selects(self, roles: list[str], chosen: dict[str, str]) -> None:
        """One optional model per role of the chosen pipeline; empty means the default model."""
        self.roles_row.clear()
        options = {"": "(default model)", **{m: m for m in self.models}}
        self.role_selects: dict[str, ui.select] = {}
        with self.roles_row:
            for role in roles:
                value = chosen.get(role, "")
                self.role_selects[role] = ui.select(options, value=value if value in options else "",
                                                    label=f"{role} model").classes("min-w-56") \
                    .props("outlined dense").mark(f"role-{role}")

    def _toolbar(self) -> None:
        """Export, replay, compare: for a run that exists."""
        with ui.row().classes("w-full items-center gap-2") as self.toolbar:
            with ui.button("Export", icon="download").props("flat dense"), ui.menu():
                for fmt, label in (("md", "Markdown trace"), ("json", "JSON (lossless)"), ("pdf", "PDF")):
                    ui.menu_item(label, lambda f=fmt: ui.download(f"/api/runs/{self.run_id}/export?format={f}")) \
                        .mark(f"export-{fmt}")
            self.replay_button = ui.button("Replay", icon="replay", on_click=self.replay).props("flat dense") \
                .mark("replay")
            ui.space()
            self.compare = ui.select({}, label="Compare with…", on_change=self._compare) \
                .classes("min-w-64").props("outlined dense").mark("compare-with")
        self.toolbar.set_visibility(bool(self.run_id))

    # ---- running -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Validate and start; errors are shown and nothing starts."""
        if self.running:
            ui.notify("The pipeline is still running: stop it first (Esc).", type="warning")
            return
        models = {role: select.value for role, select in self.role_selects.items() if select.value}
        try:
            attempts = int(self.max_attempts.value) if self.max_attempts.value is not None else None
            active = await self.lantern.pipelines.start(
                user_id=current_user_id(), topic=self.topic.value or "", pipeline=self.pipeline.value,
                model=self.model.value or None, models=models or None, max_attempts=attempts)
        except (LanternError, ValueError) as exc:
            ui.notify(str(exc), type="negative", multi_line=True)
            return
        self.run_id = active.run.id
        ui.navigate.history.replace(url(f"/pipelines/{active.run.id}"))
        self._reset(active.run.config["definition"])
        self._follow(active.run.id)

    async def stop(self) -> None:
        """Stop the run now (its steps so far are kept), or end a replay."""
        if self.replaying:
            self.replaying = False
        elif self.running and self.run_id:
            await self.lantern.runs.stop(self.run_id)

    async def replay(self) -> None:
        """Play a finished run's stored events into fresh cards, at a pace a person can follow."""
        if self.running or not self.run_id:
            return
        run = await self.lantern.db.call(run_repo.get_run, run_id=self.run_id, user_id=current_user_id())
        if run is None:
            return
        self._reset(run.config.get("definition") or {})
        self.replaying = True
        self._set_running(True)
        self._consume(run.id, replay=True)

    def _follow(self, run_id: str) -> None:
        """Stream the run into step cards in the background (replay first, then live)."""
        self.running = True
        self._set_running(True)
        self._consume(run_id)

    def _consume(self, run_id: str, *, replay: bool = False) -> None:
        """One card per executed step, filled live (or replayed at a readable pace); the outcome at the end."""
        current: StepCard | None = None
        count = 0

        async def on_event(event: Event) -> None:
            nonlocal current, count
            match event:
                case StepStarted(index=index, title=title, model=model, prompt=prompt):
                    with self.steps:
                        current = self.cards[index] = StepCard(index=index, title=title, model=model, prompt=prompt)
                    self.tracker.started(title=title)
                case TextDelta(delta=delta) if current is not None:
                    current.append(delta)
                case StepFinished(index=index, ok=ok, response=response, seconds=seconds, usage=usage, error=error):
                    if (card := self.cards.get(index)) is not None:
                        await card.finish(ok=ok, response=response, seconds=seconds, usage=usage, error=error)
                    self.tracker.finished(ok)
                case Done(status=status):
                    for card in self.cards.values():
                        await card.end(status)
            self._show_progress("replaying" if replay else "running")
            count += 1
            if replay and count % REPLAY_BATCH == 0:
                await asyncio.sleep(REPLAY_PAUSE)

        async def on_end(_status: str | None) -> None:
            self.running = self.replaying = False
            run = await self.lantern.db.call(run_repo.get_run, run_id=run_id, user_id=self.user_id)
            if run is not None:
                if replay and count and self.tracker.calls < len((run.result or {}).get("steps") or []):
                    await self._show_stored(run)  # the replay was ended early: show the whole run again
                await self._finish_view(run)
            self._set_running(False)

        follow(self.lantern, run_id, on_event, container=self.steps, on_end=on_end, show_errors=not replay,
               wanted=(lambda: self.replaying) if replay else None,
               name=f"pipeline-{'replay-' if replay else ''}{run_id}")

    # ---- drawing -------------------------------------------------------------------------------

    async def _show_run(self, run: Any) -> None:
        """A stored run: follow it live if it is running here, else draw it from its result."""
        if run.status == "running":  # also if it ended since it was read: subscribe replays it from the database
            self._reset(run.config.get("definition") or {})
            self._follow(run.id)
            return
        await self._show_stored(run)
        await self._finish_view(run)

    async def _show_stored(self, run: Any) -> None:
        """Every stored step as a card, at once."""
        self._reset(run.config.get("definition") or {})
        records = (run.result or {}).get("steps") or []
        for record in records:
            with self.steps:
                self.cards[record["index"]] = await StepCard.stored(record)
            self.tracker.started(step_id=record.get("step_id"), title=record["title"])
            self.tracker.finished(bool(record.get("ok")))
        if not records:
            with self.steps:
                ui.label("No steps were stored for this run.").classes("opacity-60")

    async def _finish_view(self, run: Any) -> None:
        """The outcome, the final progress and the runs to compare with."""
        self.outcome.clear()
        with self.outcome:
            await show_outcome((run.result or {}).get("outcome"), status=run.status)
        self._show_progress(run.status)
        await self._refresh_compare()

    def _reset(self, definition: dict[str, Any]) -> None:
        """Empty cards and outcome for a run of this definition."""
        self.cards = {}
        self.steps.clear()
        self.outcome.clear()
        self.tracker = StepProgress(definition.get("steps") or [])
        self.progress.set_visibility(True)
        self.toolbar.set_visibility(bool(self.run_id))

    def _show_progress(self, status: str) -> None:
        """Steps done / total (%) and the bar."""
        self.progress.value = self.tracker.fraction
        self.progress_label.text = self.tracker.label(status)

    def _set_running(self, running: bool) -> None:
        """Buttons for the running / idle states."""
        if self.run_button.is_deleted:
            return
        self.run_button.set_visibility(not running)
        self.stop_button.set_visibility(running)
        self.replay_button.set_enabled(not running)
        self.toolbar.set_visibility(bool(self.run_id))

    # ---- choices -------------------------------------------------------------------------------

    async def _pipeline_changed(self) -> None:
        """Another pipeline: its roles and its default number of attempts."""
        try:
            spec = await self.lantern.pipelines.find(current_user_id(), self.pipeline.value or "")
        except LanternError as exc:
            ui.notify(str(exc), type="negative")
            return
        self._role_selects(spec.roles, {})
        self.max_attempts.value = spec.max_attempts

    async def _pipeline_saved(self, name: str) -> None:
        """A saved definition appears in the pipeline choice, selected."""
        self.pipeline.set_options(await self.lantern.pipelines.names(current_user_id()))
        self.pipeline.value = name
        ui.notify(f"Saved pipeline “{name}”.", type="positive")

    async def _refresh_compare(self) -> None:
        """The person's other pipeline runs."""
        runs = await self.lantern.db.call(run_repo.list_runs, user_id=self.user_id, kind="pipeline", limit=100)
        self.compare.set_options({r.id: f"{r.config.get('topic', '')[:40]} · {r.status} · "
                                  f"{r.started_at:%m-%d %H:%M}" for r in runs if r.id != self.run_id})

    def _compare(self) -> None:
        """Open the comparison with the chosen run."""
        if self.compare.value and self.run_id:
            ui.navigate.to(f"/pipelines/compare?a={self.run_id}&b={self.compare.value}")

