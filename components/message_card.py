"""A message's box and header as one element, whose buttons report through one page-level event.

A thread draws up to 40 messages and every send draws two. Drawn with NiceGUI elements, a header was
five elements and each action button carried its own listener record: ~1 KB per message on the wire.
This element is ~120 bytes; the browser draws the header, and a click comes back as the page-level
event `EVENT` with `[card id, action]`, which `listen` routes to the card.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from nicegui import Client, ui
from nicegui.events import GenericEventArguments

EVENT = "lantern_msg"
ACTIONS = ("branch-prev", "branch-next", "edit", "regenerate", "continue")  # the browser knows their icons and names
LABELS = {"user": "You", "assistant": "Assistant"}

Handler = Callable[[], Any]


class MessageCard(ui.element, component="message_card.js"):
    """Role, time and actions above the children (the message's body); `offer` and `withdraw` actions."""

    def __init__(self, *, role: str, created: datetime | None = None,
                 branch: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.role = role
        self._handlers: dict[str, Handler] = {}
        self._props["r"] = role
        if created is not None:
            aware = created if created.tzinfo is not None else created.replace(tzinfo=UTC)  # stored as UTC
            self._props["t"] = int(aware.timestamp())  # seconds since the epoch: shorter than ISO 8601 on the wire
        if branch is not None and branch[1] > 1:
            self._props["b"] = list(branch)
        self._props["a"] = []
        listen(self.client)

    @property
    def actions(self) -> list[str]:
        """The actions offered now, in the order they are drawn."""
        return list(self._props["a"])

    def offer(self, action: str, handler: Handler) -> None:
        """Show an action's button; a click calls `handler` (sync or async)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown message action {action!r}")
        self._handlers[action] = handler
        self._set_actions([a for a in ACTIONS if a in self._handlers])

    def withdraw(self, action: str) -> None:
        """Take an action's button away."""
        if self._handlers.pop(action, None) is not None:
            self._set_actions([a for a in ACTIONS if a in self._handlers])

    def act(self, action: str) -> Any:
        """Run an action the reader chose (an async one returns its awaitable); one not offered is ignored."""
        handler = self._handlers.get(action)
        return handler() if handler is not None else None

    def _set_actions(self, actions: list[str]) -> None:
        self._props["a"] = actions
        self.mark(*actions)  # tests find a message by the actions it offers
        self.update()

    def _displayed_contents(self, *, only_visible: bool) -> list[object]:
        """What a person reads in the header (for NiceGUI's element filters and the User fixture)."""
        label = LABELS.get(self.role, self.role.title())
        if (branch := self._props.get("b")) is not None:
            return [label, f"{branch[0] + 1}/{branch[1]}"]
        return [label]


def listen(client: Client) -> None:
    """Route this page's message actions to their cards (once per page; best while the page is built)."""
    if not any(listener.type == EVENT for listener in client.layout._event_listeners.values()):
        client.layout.on(EVENT, _dispatch)


def _dispatch(event: GenericEventArguments) -> Any:
    """`[card id, action]` from the browser: run it if that card on this page offers it.

    Sync, so a sync action (opening the editor) is done when the event is; NiceGUI awaits what it returns.
    """
    args = event.args
    if not (isinstance(args, list) and len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str)):
        return None
    card = event.client.elements.get(args[0])
    if isinstance(card, MessageCard) and not card.is_deleted:
        return card.act(args[1])
    return None
