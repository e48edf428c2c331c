"""The shared page chrome: header, navigation drawer, dark mode."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from nicegui import app, ui

from app import auth
from app.urls import url
from components.streaming_markdown import RELAY_JS
from services.kinds import KINDS

# Chat first (with its Tools page), then every other run kind's page as the registry lists them.
NAV = [
    (KINDS.get("chat").title, "/", KINDS.get("chat").icon),
    ("Tools", "/tools", "build"),
    *((kind.title, kind.page, kind.icon) for kind in KINDS if kind.page),
    ("History", "/history", "history"),
    ("Settings", "/settings", "settings"),
]


@dataclass
class Chrome:
    """What a page may add to: the navigation drawer."""

    drawer: ui.left_drawer


@contextmanager
def frame(title: str) -> Iterator[Chrome]:
    """Header, navigation and dark mode around a page's content."""
    ui.add_head_html(f'<link rel="stylesheet" href="{url("/static/lantern.css")}">')
    ui.add_head_html(f'<link rel="stylesheet" href="{url("/lantern/highlight.css")}">')
    ui.add_head_html(RELAY_JS)  # streamed replies' frames reach their element in order (streaming_markdown.py)
    dark = ui.dark_mode(app.storage.user.get("dark", None) if _has_user_storage() else None)
    with ui.left_drawer(value=True, bordered=True).classes("px-2 py-4") as drawer:
        for label, path, icon in NAV:
            with ui.link(target=path).classes("no-underline text-inherit w-full"), \
                    ui.row().classes("items-center gap-3 px-3 py-2 rounded hover:bg-gray-500/10 w-full"):
                ui.icon(icon).classes("text-xl opacity-80")
                ui.label(label)
    with ui.header(elevated=False).classes("items-center gap-2 px-4 py-2 bg-primary"):
        ui.button(icon="menu", on_click=drawer.toggle).props('flat round dense color=white aria-label="Menu"') \
            .tooltip("Menu")
        ui.label("Lantern").classes("text-lg font-semibold")
        ui.label(f"· {title}").classes("text-lg opacity-80")
        ui.space()
        ui.button(icon="dark_mode", on_click=lambda: _toggle_dark(dark)) \
            .props('flat round dense color=white aria-label="Dark mode"').tooltip("Dark mode (Ctrl+Shift+D)")
        if auth.shared():
            with ui.button(icon="account_circle").props('flat round dense color=white aria-label="Account"') \
                    .mark("account-menu"), ui.menu():
                ui.item(auth.current_principal().name).props("dense").classes("opacity-70")
                ui.menu_item("Settings", on_click=lambda: ui.navigate.to("/settings"))
                ui.menu_item("Log out", on_click=lambda: ui.navigate.to("/logout")).mark("logout")
    ui.keyboard(lambda e: _toggle_dark(dark) if e.action.keydown and e.modifiers.ctrl
                and e.modifiers.shift and e.key.name.lower() == "d" else None, ignore=[])
    with ui.column().classes("w-full max-w-5xl mx-auto p-4 gap-4"):
        yield Chrome(drawer=drawer)


def _toggle_dark(dark: ui.dark_mode) -> None:
    """Flip dark mode and remember it for this browser."""
    dark.value = not dark.value
    if _has_user_storage():
        app.storage.user["dark"] = dark.value


def _has_user_storage() -> bool:
    """User storage needs a storage secret; tests and the CLI always set one."""
    try:
        app.storage.user  # noqa: B018
        return True
    except RuntimeError:
        return False
