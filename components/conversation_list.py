"""The conversation sidebar: newest first, search, rename, delete with confirmation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from nicegui import ui

Loader = Callable[[str], Awaitable[list[dict[str, Any]]]]
Action = Callable[[str, str], Awaitable[None]]


class ConversationList:
    """Lists conversations; `refresh()` reloads with the current search."""

    def __init__(self, *, load: Loader, rename: Action, delete: Callable[[str], Awaitable[None]],
                 current: str | None) -> None:
        self._load, self._rename, self._delete, self.current = load, rename, delete, current
        with ui.column().classes("w-full gap-1 mt-4"):
            ui.button("New chat", icon="add", on_click=lambda: ui.navigate.to("/")) \
                .props("outline dense").classes("w-full")
            self.search = ui.input(placeholder="Search conversations").props("dense clearable outlined") \
                .classes("w-full")
            self.search.on("update:model-value", self.refresh, throttle=0.3, leading_events=False)
            self.items = ui.column().classes("w-full gap-0")
            # Dialogs live here, not inside the row's menu, which closes (and hides them) on click.
            self.dialogs = ui.element()

    async def refresh(self) -> None:
        """Reload the list (newest first) for the current search text."""
        rows = await self._load((self.search.value or "").strip())
        self.items.clear()
        with self.items:
            if not rows:
                ui.label("No conversations yet." if not self.search.value else "Nothing matches.") \
                    .classes("opacity-60 text-sm px-2 py-2")
            for row in rows:
                self._row(row)

    def _row(self, row: dict[str, Any]) -> None:
        """One conversation: click to open, menu to rename or delete."""
        active = "bg-primary/10" if row["id"] == self.current else ""
        with ui.row().classes(f"w-full items-center no-wrap rounded px-2 {active} hover:bg-gray-500/10"):
            ui.link(row["title"], f"/chat/{row['id']}") \
                .classes("flex-grow truncate no-underline text-inherit text-sm py-1")
            with ui.button(icon="more_vert").props("flat round dense size=sm"), ui.menu():
                ui.menu_item("Rename", partial(self._ask_rename, row)).mark("rename")
                ui.menu_item("Delete", partial(self._ask_delete, row)).mark("delete")

    def _ask_rename(self, row: dict[str, Any]) -> None:
        """A dialog with the title to edit."""
        self.dialogs.clear()
        with self.dialogs, ui.dialog() as dialog, ui.card().classes("min-w-80"):
            ui.label("Rename conversation").classes("text-lg")
            title = ui.input("Title", value=row["title"]).classes("w-full").mark("rename-title")

            async def save() -> None:
                text = (title.value or "").strip()
                if not text:
                    ui.notify("A title cannot be empty.", type="warning")
                    return
                await self._rename(row["id"], text)
                dialog.close()
                await self.refresh()

            title.on("keydown.enter", save)
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=dialog.close).props("flat")
                ui.button("Save", on_click=save)
        dialog.open()

    def _ask_delete(self, row: dict[str, Any]) -> None:
        """Confirm, then delete."""
        self.dialogs.clear()
        with self.dialogs, ui.dialog() as dialog, ui.card():
            ui.label(f"Delete “{row['title']}”? This cannot be undone.")

            async def confirm() -> None:
                await self._delete(row["id"])
                dialog.close()
                if row["id"] == self.current:
                    ui.navigate.to("/")
                else:
                    await self.refresh()

            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=dialog.close).props("flat")
                ui.button("Delete", on_click=confirm).props("color=negative").mark("confirm-delete")
        dialog.open()
