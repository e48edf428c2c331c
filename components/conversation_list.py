"""The conversation sidebar: newest first, search, rename, delete with confirmation.

Rows are updated one at a time: a send moves its conversation to the top (or adds it), and rename
and delete touch only their row, so a page with 100 conversations does not redraw the list per
message. All rows share one actions menu, moved under the row whose button was pressed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nicegui import ui
from nicegui.elements.mixins.text_element import TextElement
from nicegui.events import GenericEventArguments

from components.buttons import dialog_actions

Loader = Callable[[str], Awaitable[list[dict[str, Any]]]]
OneLoader = Callable[[str], Awaitable[dict[str, Any] | None]]
Action = Callable[[str, str], Awaitable[None]]

# One class each (CSS in lantern.css): a first send adds a row, and issue #9 counts every byte of it.
ROW_CLASS = "lantern-conv"
ACTIVE_CLASS = "lantern-conv-on"
MENU_BUTTON_CLASS = "lantern-conv-menu"
# A click in the list that landed on a row's actions button: report the row's element id.
ROW_BUTTON_JS = (f"(e) => {{ const b = e.target.closest('.{MENU_BUTTON_CLASS}'); "
                 f"if (b) emit(Number(b.closest('.{ROW_CLASS}').id.slice(1))); }}")


@dataclass(slots=True)
class _Row:
    """The elements of one listed conversation."""

    id: str
    title: str
    box: ui.element
    link: Anchor
    actions: ui.element


class Anchor(TextElement):
    """A plain `<a>`: `ui.link` is a component (a module to load) with a longer record on the wire."""

    def __init__(self, text: str, href: str) -> None:
        super().__init__(tag="a", text=text)
        self._props["href"] = href


class ConversationList:
    """Lists conversations; `refresh()` reloads with the current search, `touch()` updates one row."""

    def __init__(self, *, load: Loader, load_one: OneLoader, rename: Action,
                 delete: Callable[[str], Awaitable[None]], href: Callable[[str], str], current: str | None,
                 limit: int = 100) -> None:
        self._load, self._load_one, self._rename, self._delete = load, load_one, rename, delete
        self._href = href  # a conversation's address as the browser must ask for it (behind a proxy's prefix)
        self.current, self.limit = current, limit
        self.rows: dict[str, _Row] = {}  # in display order, newest first
        self._empty: ui.label | None = None
        self._menu_row: str | None = None
        with ui.column().classes("w-full gap-1 mt-4"):
            ui.button("New chat", icon="add", on_click=lambda: ui.navigate.to("/")) \
                .props("outline dense").classes("w-full")
            self.search = ui.input(placeholder="Search conversations").props("dense clearable outlined") \
                .classes("w-full")
            self.search.on("update:model-value", self.refresh, throttle=0.3, leading_events=False)
            # One click listener for every row's actions button (a listener record per row was ~250 bytes of
            # each new row, issue #9): the browser reports which row's button was pressed. It sits on a wrapper
            # that is never redrawn, since an element travels with its listeners each time its children change.
            with ui.element().classes("w-full").mark("conversation-clicks") \
                    .on("click", self._row_button, js_handler=ROW_BUTTON_JS):
                self.items = ui.element().classes("lantern-convs").mark("conversation-list")
            # The shared menu rests here while no row has it, so clearing the rows never deletes it.
            self._menu_home = ui.element()
            with self._menu_home, ui.menu().mark("conversation-menu") as self.menu:
                ui.menu_item("Rename", self._rename_chosen).mark("rename")
                ui.menu_item("Delete", self._delete_chosen).mark("delete")
            # Dialogs live here, not inside the menu, which closes (and hides them) on click.
            self.dialogs = ui.element()

    @property
    def _query(self) -> str:
        return (self.search.value or "").strip()

    async def refresh(self) -> None:
        """Reload the list (newest first) for the current search text."""
        rows = await self._load(self._query)
        self._park_menu()
        self.items.clear()
        self.rows.clear()
        self._empty = None
        with self.items:
            for row in rows:
                self._add_row(row)
        self._show_empty_state()

    async def touch(self, conversation_id: str) -> None:
        """A message was sent in a conversation: move its row to the top, or add it there."""
        if (row := self.rows.get(conversation_id)) is not None:
            if next(iter(self.rows)) != conversation_id:
                self.rows = {conversation_id: row, **self.rows}
                row.box.move(self.items, target_index=0)
            return
        if self._query:  # whether it matches the search now is the database's call
            await self.refresh()
            return
        if (item := await self._load_one(conversation_id)) is None:
            return
        if self._empty is not None:
            self._empty.delete()
            self._empty = None
        with self.items:
            new = self._add_row(item)
        new.box.move(self.items, target_index=0)
        self.rows = {conversation_id: new, **self.rows}
        while len(self.rows) > self.limit:
            self._remove_row(next(reversed(self.rows)))

    def set_current(self, conversation_id: str | None) -> None:
        """Highlight the conversation shown in this tab."""
        for row in self.rows.values():
            active = row.id == conversation_id
            if active and ACTIVE_CLASS not in row.box.classes:
                row.box.classes(add=ACTIVE_CLASS)
            elif not active and ACTIVE_CLASS in row.box.classes:
                row.box.classes(remove=ACTIVE_CLASS)
        self.current = conversation_id

    # ---- rows ----------------------------------------------------------------------------------

    def _add_row(self, item: dict[str, Any]) -> _Row:
        """One conversation: click to open; its actions button opens the shared menu."""
        conv_id, title = item["id"], item["title"]
        classes = f"{ROW_CLASS} {ACTIVE_CLASS}" if conv_id == self.current else ROW_CLASS
        with ui.element().classes(classes).mark("conversation-row") as box:
            link = Anchor(title, self._href(conv_id))
            actions = ui.element("q-btn").classes(MENU_BUTTON_CLASS).mark("conversation-actions") \
                .props("icon=more_vert flat round dense size=sm aria-haspopup=menu")
        # Named "Actions", described by the row's title: the title is not sent twice.
        actions.props["aria-label"] = "Actions"
        actions.props["aria-describedby"] = link.html_id
        row = self.rows[conv_id] = _Row(id=conv_id, title=title, box=box, link=link, actions=actions)
        return row

    def _remove_row(self, conversation_id: str) -> None:
        """Take one row off the list."""
        row = self.rows.pop(conversation_id)
        if self._menu_row == conversation_id:
            self._park_menu()
        row.box.delete()

    def _show_empty_state(self) -> None:
        """Say why the list is empty."""
        if not self.rows and self._empty is None:
            with self.items:
                self._empty = ui.label("Nothing matches." if self._query else "No conversations yet.") \
                    .classes("opacity-60 text-sm px-2 py-2")

    # ---- the shared menu -----------------------------------------------------------------------

    def _row_button(self, event: GenericEventArguments) -> None:
        """A row's actions button was pressed (the browser names the row's element): open its menu."""
        row = next((r for r in self.rows.values() if r.box.id == event.args), None)
        if row is not None:
            self._open_menu(row.id)

    def _open_menu(self, conversation_id: str) -> None:
        """Show the actions menu under this row's button."""
        row = self.rows.get(conversation_id)
        if row is None:
            return
        if self._menu_row != conversation_id:
            # Under its button already, the menu toggles itself in the browser on the same click.
            self._menu_row = conversation_id
            self.menu.move(row.actions)
            self.menu.open()

    def _park_menu(self) -> None:
        """Move the menu out of the rows (closed), so it outlives them."""
        if self._menu_row is not None:
            self.menu.close()
            self.menu.move(self._menu_home)
            self._menu_row = None

    def _chosen(self) -> _Row | None:
        """The row whose menu was opened."""
        return self.rows.get(self._menu_row) if self._menu_row else None

    def _rename_chosen(self) -> None:
        if (row := self._chosen()) is not None:
            self._ask_rename(row)

    def _delete_chosen(self) -> None:
        if (row := self._chosen()) is not None:
            self._ask_delete(row)

    # ---- dialogs -------------------------------------------------------------------------------

    def _ask_rename(self, row: _Row) -> None:
        """A dialog with the title to edit."""
        self.dialogs.clear()
        with self.dialogs, ui.dialog() as dialog, ui.card().classes("min-w-80"):
            ui.label("Rename conversation").classes("text-lg")
            title = ui.input("Title", value=row.title).classes("w-full").mark("rename-title")

            async def save() -> None:
                text = (title.value or "").strip()
                if not text:
                    ui.notify("A title cannot be empty.", type="warning")
                    return
                await self._rename(row.id, text)
                dialog.close()
                if self._query:  # the new title may no longer match
                    await self.refresh()
                elif row.id in self.rows:
                    row.title = row.link.text = text

            title.on("keydown.enter", save)
            dialog_actions(dialog, "Save", save, props="")
        dialog.open()

    def _ask_delete(self, row: _Row) -> None:
        """Confirm, then delete."""
        self.dialogs.clear()
        with self.dialogs, ui.dialog() as dialog, ui.card():
            ui.label(f"Delete “{row.title}”? This cannot be undone.")

            async def confirm() -> None:
                await self._delete(row.id)
                dialog.close()
                if row.id == self.current:
                    ui.navigate.to("/")
                elif len(self.rows) >= self.limit:  # one more may now fit on the list
                    await self.refresh()
                elif row.id in self.rows:
                    self._remove_row(row.id)
                    self._show_empty_state()

            dialog_actions(dialog, "Delete", confirm, marker="confirm-delete", props="color=negative")
        dialog.open()

