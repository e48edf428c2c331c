"""Small icon buttons with an accessible name and a tooltip."""

from __future__ import annotations

from typing import Any

from nicegui import ui


def icon_button(icon: str, label: str, on_click: Any, *, marker: str | None = None,
                props: str = "flat round dense size=sm") -> ui.button:
    """An icon-only button that screen readers and tests can name."""
    button = ui.button(icon=icon, on_click=on_click).props(props).tooltip(label)
    # Set as a value, never parsed: a label holds user text (a user or token name), and a quote in it
    # would otherwise close the string and add a `:prop`, which NiceGUI evaluates as JavaScript.
    button.props["aria-label"] = label
    return button.mark(marker) if marker else button


def dialog_actions(dialog: ui.dialog, label: str, on_click: Any, *, marker: str | None = None,
                   props: str = "unelevated") -> ui.button:
    """A dialog's closing row: Cancel, then the action (returned, for the page to mark or disable)."""
    with ui.row().classes("w-full justify-end"):
        ui.button("Cancel", on_click=dialog.close).props("flat")
        action = ui.button(label, on_click=on_click).props(props)
    return action.mark(marker) if marker else action
