"""History: every conversation and run, newest first, re-openable."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from app.auth import current_user_id
from app.context import Lantern
from app.pages.frame import frame
from services.core.usage import usage_text
from services.kinds import KINDS
from storage import conversations as conv_repo
from storage import runs as run_repo

PAGE = 100


def register(lantern: Lantern) -> None:
    """The /history route; `?tab=runs` opens the Runs tab (Back from a run returns there)."""

    @ui.page("/history")
    async def history(tab: str = "conversations") -> None:
        await HistoryPage(lantern).build(tab)


class HistoryPage:
    """Conversations and runs (duets, pipelines, studio) in two searchable lists."""

    def __init__(self, lantern: Lantern) -> None:
        self.lantern = lantern

    async def build(self, tab: str = "conversations") -> None:
        """Draw both lists; each search narrows its own list."""
        with frame("History"):
            with ui.tabs().classes("w-full") as tabs:
                conversations_tab = ui.tab("conversations", label="Conversations", icon="chat")
                runs_tab = ui.tab("runs", label="Runs", icon="play_circle")
            # The tab lives in the address, so Back from a run opened here returns to the Runs tab.
            tabs.on_value_change(lambda e: ui.navigate.history.replace("?tab=runs" if e.value == "runs" else "history"))
            with ui.tab_panels(tabs, value=runs_tab if tab == "runs" else conversations_tab).classes("w-full"):
                with ui.tab_panel(conversations_tab):
                    self.search = ui.input(placeholder="Search titles and messages").props("dense outlined clearable") \
                        .classes("w-full").mark("history-search")
                    self.search.on("update:model-value", self.show_conversations, throttle=0.3, leading_events=False)
                    self.conversations = ui.column().classes("w-full gap-0")
                with ui.tab_panel(runs_tab):
                    self.run_search = ui.input(placeholder="Search topics, titles and what was written") \
                        .props("dense outlined clearable").classes("w-full").mark("history-run-search")
                    self.run_search.on("update:model-value", self.show_runs, throttle=0.3, leading_events=False)
                    self.runs = ui.column().classes("w-full gap-0")
        await self.show_conversations()
        await self.show_runs()

    async def show_conversations(self) -> None:
        """Newest first; each opens in Chat."""
        items, total = await self.lantern.db.call(conv_repo.list_conversations, user_id=current_user_id(),
                                                  q=(self.search.value or "").strip(), limit=PAGE)
        self.conversations.clear()
        with self.conversations:
            if not items:
                ui.label("No conversations yet — start one in Chat." if not self.search.value
                         else "Nothing matches.").classes("opacity-60 py-4")
            for item in items:
                self._row(KINDS.get("chat").icon, item["title"], f"/chat/{item['id']}",
                          f"{item['message_count']} messages · {item['model'] or ''}", item["updated_at"])
            if total > len(items):
                ui.label(f"Showing the newest {len(items)} of {total}.").classes("text-xs opacity-60 py-2")

    async def show_runs(self) -> None:
        """Duets and other runs; each re-opens where it can be followed or read; continuations say so."""
        q = (self.run_search.value or "").strip()
        runs = await self.lantern.db.call(run_repo.list_runs, user_id=current_user_id(), limit=PAGE,
                                          exclude_kind="chat", q=q)  # chat replies live in their conversations
        continued = {r.config["continue_from"] for r in runs if r.config.get("continue_from")}
        self.runs.clear()
        with self.runs:
            if not runs:
                ui.label("Nothing matches." if q else "No duets or pipelines yet.").classes("opacity-60 py-4")
            for run in runs:
                figures = f"{run.status} · {usage_text(run.input_tokens, run.output_tokens, run.cost_usd)}"
                if parent := run.config.get("continue_from"):
                    figures += " · ↳ continues an earlier run"
                if run.id in continued:
                    figures += " · continued later"
                kind = KINDS.get(run.kind) if run.kind in KINDS else None  # a kind a newer version stored
                self._row(kind.icon if kind else "history", kind.label(run) if kind else run.kind.title(),
                          kind.url(run) if kind else "/history?tab=runs", figures, run.started_at,
                          marker=f"run-{run.id}" + (f" continues-{parent}" if parent else ""))

    @staticmethod
    def _row(icon: str, title: str, target: str, detail: str, when: Any, marker: str | None = None) -> None:
        """One clickable line."""
        with ui.link(target=target).classes("no-underline text-inherit w-full").mark(marker or ""), \
                ui.row().classes("w-full items-center gap-3 px-2 py-2 rounded hover:bg-gray-500/10 no-wrap"):
            ui.icon(icon).classes("opacity-70")
            with ui.column().classes("gap-0 flex-grow min-w-0"):
                ui.label(title).classes("truncate")
                ui.label(detail).classes("text-xs opacity-60")
            ui.label(when.strftime("%Y-%m-%d %H:%M") if when else "").classes("text-xs opacity-60")

