"""The Duet page: two bots talk live; steer either mid-run, stop, continue, export, save presets."""

from __future__ import annotations

from typing import Any

from nicegui import background_tasks, ui

from app.auth import current_user_id
from app.context import Lantern
from app.pages.run_page import draw_page, follow, register_pair
from app.urls import url
from components.buttons import icon_button
from components.duet_views import BotPanel, TurnView, change_note, change_text, summary
from services.core.errors import LanternError
from services.core.events import Done, Event, TextDelta, TurnFinished, Usage
from services.duet.kind import DUET
from services.duet.service import is_turn
from storage import presets as preset_repo
from storage import runs as run_repo
from storage.models import Run

DEFAULT_AGENTS = [
    {"name": "Ada", "system_prompt": "You are Ada, an optimistic engineer. Be concise.", "temperature": 0.7},
    {"name": "Grace", "system_prompt": "You are Grace, a sceptical reviewer. Be concise.", "temperature": 0.7},
]


def register(lantern: Lantern) -> None:
    """Routes: a new duet and a stored one."""
    register_pair(lantern, DUET, DuetPage)


class DuetPage:
    """One tab's view of one duet."""

    def __init__(self, lantern: Lantern, run_id: str | None) -> None:
        self.lantern = lantern
        self.run_id = run_id
        self.running = False
        self.status: str | None = None  # the final status, once the duet is over
        self.total_turns = 0
        self.done_turns = 0
        self.placed: set[tuple[Any, ...]] = set()  # recorded changes with a note in the transcript
        self.waiting: dict[int, list[ui.label]] = {}  # this tab's changes per bot, until its next turn uses them

    async def build(self) -> None:
        """Draw the panels and the transcript; re-attach to a running duet."""
        self.user_id = current_user_id()  # kept: the background task that follows the run has no page context
        run = await draw_page(self.lantern, DUET, self.run_id, self._draw)
        if run is not None:
            await self._show_run(run)

    async def _draw(self, run: Run | None) -> None:
        """The bots, the controls and an empty transcript."""
        config = run.config if run else {}
        agents = (run.result.get("agents") if run and run.result else None) or config.get("agents") \
            or [{**a, "model": self.lantern.registry.default_model} for a in DEFAULT_AGENTS]
        models = [m.id for m in self.lantern.registry.list_models() if m.available]
        with ui.row().classes("w-full gap-4 no-wrap items-stretch"):
            self.panels = [BotPanel(index=i, agent=agents[i], models=models, on_apply=self.steer)
                           for i in range(2)]
        self._controls(config)
        self.progress_label = ui.label("").classes("text-sm opacity-70")
        self.progress = ui.linear_progress(value=0, show_value=False).props("rounded animation-speed=200")
        self.progress.set_visibility(False)
        self.transcript = ui.column().classes("w-full gap-3").mark("transcript")

    def _controls(self, config: dict[str, Any]) -> None:
        """Topic, turns, start/stop/continue, presets and export."""
        with ui.row().classes("w-full items-end gap-2"):
            self.topic = ui.textarea("Topic or opening message", value=config.get("topic", "")) \
                .props("autogrow outlined").classes("flex-grow").mark("topic")
            self.turns = ui.number("Turns", value=config.get("turns", 6), min=1, precision=0) \
                .props("outlined").classes("w-24").mark("turns")
            self.start_button = ui.button("Start", icon="play_arrow", on_click=self.start).mark("start")
            self.stop_button = icon_button("stop", "Stop (Esc)", self.stop, props="round color=negative",
                                           marker="stop")
            self.stop_button.set_visibility(False)
            self.continue_button = ui.button("Continue", icon="redo", on_click=self.continue_duet) \
                .props("outline").mark("continue")
            self.continue_button.set_visibility(bool(self.run_id))
        with ui.row().classes("w-full items-center gap-2"):
            self.preset_select = ui.select({}, label="Presets", on_change=self._load_preset) \
                .classes("min-w-48").props("dense outlined").mark("presets")
            ui.button("Save preset", icon="bookmark_add", on_click=self._save_preset).props("flat dense")
            ui.space()
            with ui.button("Export", icon="download").props("flat dense") as self.export, ui.menu():
                for fmt, label in (("md", "Markdown"), ("json", "JSON (lossless)"), ("pdf", "PDF")):
                    ui.menu_item(label, lambda f=fmt: ui.download(f"/api/runs/{self.run_id}/export?format={f}")) \
                        .mark(f"export-{fmt}")
            self.export.set_visibility(bool(self.run_id))
        ui.keyboard(lambda e: self.stop() if e.key.escape and e.action.keydown else None, ignore=[])
        background_tasks.create(self._refresh_presets(), name="duet-presets")

    # ---- running -------------------------------------------------------------------------------

    async def start(self, *, continue_from: str | None = None) -> None:
        """Start a duet with the panels' bots."""
        if self.running:
            ui.notify("The duet is still running: stop it first (Esc).", type="warning")
            return
        try:
            active = await self.lantern.duet.start(
                user_id=current_user_id(), topic=self.topic.value or "", turns=int(self.turns.value or 0),
                agents=[p.config() for p in self.panels], continue_from=continue_from)
        except (LanternError, ValueError) as exc:
            ui.notify(str(exc), type="negative", multi_line=True)
            return
        if continue_from:
            ui.navigate.to(f"/duet/{active.run.id}")  # the continuation is its own run, history included
            return
        self.run_id = active.run.id
        ui.navigate.history.replace(url(f"/duet/{active.run.id}"))
        self.transcript.clear()
        self.placed.clear()
        self.waiting.clear()
        self.status = None
        self._follow(active.run.id, total=int(self.turns.value or 0), done=0)

    async def continue_duet(self) -> None:
        """More turns after a stopped or finished duet (a new run that carries the transcript)."""
        if self.run_id:
            await self.start(continue_from=self.run_id)

    async def stop(self) -> None:
        """Stop now; the partial turn is kept."""
        if self.running and self.run_id:
            await self.lantern.runs.stop(self.run_id)

    async def steer(self, index: int, changes: dict[str, Any]) -> None:
        """Apply a bot's edited settings from its next turn."""
        if not (self.running and self.run_id):
            return
        try:
            await self.lantern.duet.update_agent(user_id=current_user_id(), run_id=self.run_id, index=index,
                                                 changes=changes)
        except LanternError as exc:
            ui.notify(str(exc), type="negative")
            return
        with self.transcript:  # moved before the bot's next turn when that turn begins
            note = change_note({"agent": self.panels[index].name, "changes": changes}, running=True)
        self.waiting.setdefault(index, []).append(note)
        ui.notify(f"{self.panels[index].name} will use the change from its next turn.")

    def _follow(self, run_id: str, *, total: int, done: int) -> None:
        """Stream the run into the transcript in the background."""
        self.running = True
        self.total_turns, self.done_turns = total, done
        self._set_running(True)
        current: TurnView | None = None
        usage: Usage | None = None

        async def on_event(event: Event) -> None:
            """Turn blocks fill live; each turn is labelled with its bot, after the changes that apply from it."""
            nonlocal current, usage
            match event:
                case TextDelta(delta=delta, agent=agent) if delta:
                    if current is None:
                        current = await self._new_turn(run_id, agent)
                    current.body.append(delta)
                case Usage():
                    usage = event
                case TurnFinished(agent=agent):
                    if current is None:  # it said nothing, yet it was a turn
                        current = await self._new_turn(run_id, agent)
                    await current.finish(usage=usage, status="completed")
                    current, usage = None, None
                    self.done_turns += 1
                    self._show_progress()
                case Done(status=status):
                    if current is not None:  # cut short after its bot said something: kept, so counted
                        await current.finish(usage=usage, status=status)
                        self.done_turns += 1
                    self.status = status
                    await self._close_changes(run_id)

        async def on_end(_status: str | None) -> None:
            self.running = False
            self._set_running(False)

        follow(self.lantern, run_id, on_event, container=self.transcript, on_end=on_end, name=f"duet-{run_id}")

    async def _new_turn(self, run_id: str, agent: str | None) -> TurnView:
        """The next turn's block, after the notes of the changes that apply from it."""
        changes = await self.lantern.duet.changes(user_id=self.user_id, run_id=run_id)
        self._place_changes(changes, upto=self.done_turns)
        with self.transcript:
            return TurnView(turn=self.done_turns, agent=agent or "", index=self._index(agent), live=True)

    async def _close_changes(self, run_id: str) -> None:
        """The duet is over: changes no turn used go last, as the export shows them."""
        for notes in self.waiting.values():
            for note in notes:
                note.delete()
        self.waiting.clear()
        self._place_changes(await self.lantern.duet.changes(user_id=self.user_id, run_id=run_id), upto=None)

    def _place_changes(self, changes: list[dict[str, Any]], *, upto: int | None) -> None:
        """Notes at the transcript's end for changes applied from turn `upto` or before (None: all that are left)."""
        for change in changes:
            before = change.get("before_turn")
            if upto is not None and (before is None or before > upto):
                continue
            key = (before, change.get("agent_index"), change.get("at"), str(change.get("changes")))
            if key in self.placed:
                continue
            self.placed.add(key)
            mine = self.waiting.pop(change["agent_index"], []) if before is not None else []
            for extra in mine[1:]:  # several edits before the bot's next turn were applied as one change
                extra.delete()
            if mine:  # this tab's own note: moved to where the change took effect
                mine[0].move(self.transcript)
                mine[0].text = change_text(change, running=False)
            else:
                with self.transcript:
                    change_note(change, running=False)

    # ---- drawing -------------------------------------------------------------------------------

    async def _show_run(self, run: Any) -> None:
        """A stored duet: its turns, each change before the turn it applied from; live turns if it still runs."""
        earlier: list[dict[str, Any]] = run.result.get("turns", []) if run.result else []
        if run.status == "running" and run.config.get("continue_from"):
            previous = await self.lantern.db.call(run_repo.get_run, run_id=run.config["continue_from"],
                                                  user_id=self.user_id)
            # The turns the continuation carries on from (services/duet/service.py keeps the same ones).
            earlier = [t for t in previous.result.get("turns", []) if is_turn(t)] if previous else []
        changes = await self.lantern.duet.changes(user_id=self.user_id, run_id=run.id)
        for turn in earlier:
            self._place_changes(changes, upto=turn["turn"])
            with self.transcript:
                view = TurnView(turn=turn["turn"], agent=turn["agent"], index=turn["agent_index"], live=False)
            await view.load(turn)
        # Follow even if it finished since it was read: subscribe replays a finished run from the database.
        if run.status == "running":
            self._follow(run.id, total=len(earlier) + run.config.get("turns", 0), done=len(earlier))
        else:
            self._place_changes(changes, upto=None)
            self.progress_label.text = summary(len(earlier), run.status)

    def _index(self, agent: str | None) -> int:
        """Which panel a speaker belongs to (for its colour)."""
        return 1 if agent == self.panels[1].name else 0

    def _show_progress(self) -> None:
        """Turn counter and bar."""
        total = max(self.total_turns, 1)
        self.progress.value = min(self.done_turns / total, 1)
        self.progress_label.text = f"Turn {min(self.done_turns + 1, total)} of {total}" if self.running \
            else f"{self.done_turns} turns"

    def _set_running(self, running: bool) -> None:
        """Buttons and panels for the running / idle states."""
        if self.start_button.is_deleted:
            return
        self.start_button.set_visibility(not running)
        self.stop_button.set_visibility(running)
        self.continue_button.set_visibility(not running and bool(self.run_id))
        self.export.set_visibility(bool(self.run_id))
        self.progress.set_visibility(running)
        for panel in self.panels:
            panel.set_running(running)
        self._show_progress()
        if not running:
            self.progress_label.text = summary(self.done_turns, self.status)

    # ---- presets -------------------------------------------------------------------------------

    async def _refresh_presets(self) -> None:
        presets = await self.lantern.db.call(preset_repo.list_presets, user_id=current_user_id(), kind="duet")
        self._presets = {p.name: p.config for p in presets}
        self.preset_select.set_options(sorted(self._presets))

    async def _load_preset(self) -> None:
        config = getattr(self, "_presets", {}).get(self.preset_select.value)
        if config:
            for panel, agent in zip(self.panels, config["agents"], strict=True):
                panel.fill(agent)
            self.topic.value = config.get("topic", self.topic.value)
            self.turns.value = config.get("turns", self.turns.value)

    async def _save_preset(self) -> None:
        name = " & ".join(p.name for p in self.panels)
        config = {"agents": [p.config() for p in self.panels], "topic": self.topic.value, "turns": self.turns.value}
        await self.lantern.db.call(preset_repo.save_preset, user_id=current_user_id(), kind="duet", name=name,
                                   config=config)
        await self._refresh_presets()
        ui.notify(f"Saved preset “{name}”.")
