"""Settings, for admins: the read-only SQL data sources of LANTERN_SQL_SOURCES, each with its status and tools."""

from __future__ import annotations

from nicegui import background_tasks, ui

from app.context import Lantern
from services.tools.sources import SEPARATOR, SqlSource, probe

READY = ("ready", "connected")


class SourcesSection:
    """A card listing the sources; PostgreSQL ones are connected to in the background, so the page is not held."""

    def __init__(self, lantern: Lantern) -> None:
        self.lantern = lantern

    def build(self) -> None:
        """The card (also when no source is configured, to say how to add one)."""
        sources = self.lantern.tools.sources
        with ui.card().classes("w-full").mark("sources-section"):
            with ui.row().classes("w-full items-center"):
                ui.label("Data sources").classes("text-lg font-semibold")
                ui.space()
                if sources:
                    ui.button("Check again", icon="refresh", on_click=self._refresh).props("flat") \
                        .mark("sources-check")
            ui.label("Read-only SQL databases the assistant may query, from LANTERN_SQL_SOURCES; each adds "
                     f"name{SEPARATOR}sql_query and name{SEPARATOR}describe_data next to the sample database's "
                     "tools. Passwords are never shown.").classes("text-sm opacity-70")
            self.rows = ui.column().classes("w-full gap-1")
        if not sources:
            with self.rows:
                ui.label("No data sources: set LANTERN_SQL_SOURCES (see README, Your own data).") \
                    .classes("opacity-60 text-sm").mark("sources-empty")
            return
        self._draw({s.name: "checking…" if s.kind == "postgresql" and not s.problem else s.status()
                    for s in sources})
        background_tasks.create(self._refresh(), name="sql-source-status")

    async def _refresh(self) -> None:
        """Check every source now and redraw."""
        statuses = {s.name: await probe(s) for s in self.lantern.tools.sources}
        if not self.rows.is_deleted:
            self._draw(statuses)

    def _draw(self, statuses: dict[str, str]) -> None:
        """One row per source: name, engine, masked URL, status, tools."""
        self.rows.clear()
        with self.rows:
            for source in self.lantern.tools.sources:
                self._row(source, statuses[source.name])

    @staticmethod
    def _row(source: SqlSource, status: str) -> None:
        """One source."""
        ok = status.startswith(READY)
        with ui.column().classes("w-full gap-0").mark(f"source-{source.name}"):
            with ui.row().classes("w-full items-center gap-3 text-sm"):
                ui.icon("check_circle" if ok else "pending" if status == "checking…" else "error") \
                    .classes("text-positive" if ok else "opacity-60" if status == "checking…" else "text-negative")
                ui.label(source.name).classes("font-medium")
                ui.label(source.kind or "invalid").classes("opacity-70")
                ui.label(source.display_url).classes("font-mono text-xs opacity-60")
            ui.label(status).classes("text-xs" + ("" if ok else " text-negative")).mark(f"source-status-{source.name}")
            if not source.problem:
                ui.label(f"{source.name}{SEPARATOR}sql_query, {source.name}{SEPARATOR}describe_data") \
                    .classes("text-xs opacity-70 font-mono")
