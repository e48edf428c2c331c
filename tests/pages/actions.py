"""Clicks the simulated User cannot make itself: buttons whose clicks reach the server through one shared listener."""

from __future__ import annotations

from nicegui.testing import User
from nicegui.testing.user_interaction import UserInteraction

from components.message_card import EVENT, MessageCard


def press(user: User, action: str) -> None:
    """Click `action` (e.g. "edit") on the first message offering it, like the button in the browser does."""
    cards = [c for c in user.find(kind=MessageCard, marker=action).elements if isinstance(c, MessageCard)]
    assert cards, f"no message offers {action!r}"
    card = min(cards, key=lambda c: c.id)
    assert user.client is not None
    UserInteraction(user, {user.client.layout}, None).trigger(EVENT, [card.id, action])


def open_row_menu(user: User, index: int = 0) -> None:  # index: rows in the order they were drawn
    """Press a sidebar row's actions button: the list's one click listener hears which row's button it was."""
    rows = sorted(user.find(marker="conversation-row").elements, key=lambda r: r.id)
    user.find(marker="conversation-clicks").trigger("click", rows[index].id)


def press_icon(user: User, marker: str) -> None:
    """Click an icon button found by its marker."""
    user.find(marker=marker).click()
