"""Pages whose features land in later issues say so plainly until then."""

from __future__ import annotations

from nicegui import ui

from app.pages.frame import coming

PLANNED = {
    "/settings": ("Settings", "Providers, keys, prices and API tokens."),
}


def register() -> None:
    """One page per planned feature."""
    for path, (title, text) in PLANNED.items():
        ui.page(path)(lambda title=title, text=text: coming(title, text))
