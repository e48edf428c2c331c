"""Small icon buttons with an accessible name and a tooltip."""

from __future__ import annotations

from typing import Any

from nicegui import ui


def icon_button(icon: str, label: str, on_click: Any, *, marker: str | None = None,
                props: str = "flat round dense size=sm") -> ui.button:
    """An icon-only button that screen readers and tests can name."""
    button = ui.button(icon=icon, on_click=on_click).props(f'{props} aria-label="{label}"').tooltip(label)
    return button.mark(marker) if marker else button
