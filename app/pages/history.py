"""History: every conversation and run, newest first, re-openable."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from app.auth import current_user_id
from app.context import Lantern
from app.pages.frame import frame
from storage import conversations as conv_repo
from storage import runs as run_repo

PAGE = 100
PAGES = {"duet": "/duet", "pipeline": "/pipelines", "deliverables": "/studio"}
KIND_ICON = {"chat": "chat", "duet": "forum", "pipeline": "account_tree", "deliverables": "campaign"}


def register(lantern: Lantern) -> None:
    """The /history route."""

    @ui.page("/history")
    async def history() -> None:
        await HistoryPage(lantern).build()


class HistoryPage:
    """Conversations and runs (duets, pipelines, studio) in two lists."""

    def __init__(self, lantern: Lantern) -> None:
        self.lantern = lantern

    async def build(self) -> None:
        """Draw both lists; the search narrows conversations by title and text."""
        with frame("History"):
            with ui.tabs().classes("w-full") as tabs:
                conversations_tab = ui.tab("Conversations", icon="chat")
                runs_tab = ui.tab("Runs", icon="play_circle")
            with ui.tab_panels(tabs, value=conversations_tab).classes("w-full"):
                with ui.tab_panel(conversations_tab):
                    self.search = ui.input(placeholder="Search titles and messages").props("dense outlined clearable") \
                        .classes("w-full").mark("history-search")
                    self.search.on("update:model-value", self.show_conversations, throttle=0.3, leading_events=False)
                    self.conversations = ui.column().classes("w-full gap-0")
                with ui.tab_panel(runs_tab):
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
                self._row("chat", item["title"], f"/chat/{item['id']}",
                          f"{item['message_count']} messages · {item['model'] or ''}", item["updated_at"])
            if total > len(items):
                ui.label(f"Showing the newest {len(items)} of {total}.").classes("text-xs opacity-60 py-2")

    async def show_runs(self) -> None:
        """Duets and other runs; each re-opens where it can be followed or read."""
        runs = await self.lantern.db.call(run_repo.list_runs, user_id=current_user_id(), limit=PAGE)
        self.runs.clear()
        with self.runs:
            shown = [r for r in runs if r.kind != "chat"]  # chat replies live in their conversations
            if not shown:
                ui.label("No duets or pipelines yet.").classes("opacity-60 py-4")
            for run in shown:
                brief = run.config.get("brief") or {}
                title = run.config.get("topic") or (f"{run.config.get('module', '')} · {brief.get('brand', '')}"
                                                    if brief else run.kind.title())
                figures = f"{run.status} · {run.output_tokens} tokens · ${run.cost_usd:.4f}"
                self._row(run.kind, title, f"{PAGES.get(run.kind, '/' + run.kind)}/{run.id}", figures,
                          run.started_at)

    @staticmethod
    def _row(kind: str, title: str, target: str, detail: str, when: Any) -> None:
        """One clickable line."""
        with ui.link(target=target).classes("no-underline text-inherit w-full"), \
                ui.row().classes("w-full items-center gap-3 px-2 py-2 rounded hover:bg-gray-500/10 no-wrap"):
            ui.icon(KIND_ICON.get(kind, "history")).classes("opacity-70")
            with ui.column().classes("gap-0 flex-grow min-w-0"):
                ui.label(title).classes("truncate")
                ui.label(detail).classes("text-xs opacity-60")
            ui.label(when.strftime("%Y-%m-%d %H:%M") if when else "").classes("text-xs opacity-60")
