"""One assistant reply as a run body: streams the provider (or the agent loop) and stores the message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from services.chat.agent import run_agent
from services.core.errors import LanternError, ProviderUnavailable
from services.core.events import Event, TextDelta, ToolCall, ToolOutput, Usage
from services.core.usage import UsageTally
from services.providers.base import ChatRequest, Provider
from services.tools.base import Tool
from storage import conversations as conv_repo
from storage.engine import Database

# Stop reasons of a reply that was cut off rather than finished (services/core/events.py STOP_REASONS).
CUT_OFF = ("length", "interrupted", "content_filter")


class ReplyBody:
    """Remembers text and tool cards in order, and stores them when the run ends, however it ends."""

    def __init__(self, *, db: Database, provider: Provider, request: ChatRequest, message_id: str,
                 dropped: int = 0, tools: dict[str, Tool] | None = None) -> None:
        self.db = db
        self.provider = provider
        self.request = request
        self.message_id = message_id
        self.dropped = dropped
        self.tools = tools or {}
        self.parts: list[dict[str, Any]] = []
        self._pieces: list[str] = []  # the last text part's deltas, joined when read: O(n), not a copy per token
        self.tally = UsageTally()
        self.stop_reason: str | None = None

    async def events(self) -> AsyncIterator[Event]:
        """Provider (or agent) events, remembered for the final message."""
        source = (run_agent(self.provider, self.request, self.tools) if self.tools
                  else self.provider.stream(self.request))
        async for event in source:
            self._remember(event)
            yield event
        if not self.parts:  # nothing said and no tool used: show it as a failure, not a blank reply
            raise ProviderUnavailable(f"{self.provider.name}/{self.request.model} returned an empty reply; "
                                      "try again or pick another model")

    async def finish(self, status: str, error: LanternError | None) -> dict[str, Any]:
        """Store the reply (partial on stop or failure), with its tool cards."""
        self._settle()
        content = self.content
        self.tally.settle()  # stopped mid-reply: the streamed text still counts (estimated)
        fields: dict[str, Any] = {"content": content, "status": status, **self.tally.fields()}
        extra: dict[str, Any] = {"dropped_messages": self.dropped} if self.dropped else {}
        if any(p["type"] == "tool" for p in self.parts):
            extra["parts"] = self.parts
        if error is not None:
            extra["error"] = {"type": error.kind, "message": str(error)}
        if self.tally.estimated:
            extra["estimated_usage"] = True
        if self.stop_reason in CUT_OFF:  # a reply the model did not finish: the page offers Continue
            extra["stop_reason"] = self.stop_reason
        if extra:
            fields["extra"] = extra
        await self.db.call(conv_repo.update_message, message_id=self.message_id, **fields)
        return {"message": {"role": "assistant", "content": content}}

    @property
    def content(self) -> str:
        """The reply's text: its text parts, separated where tool calls stood between them."""
        self._settle()
        return "\n\n".join(p["text"] for p in self.parts if p["type"] == "text" and p["text"].strip())

    def _remember(self, event: Event) -> None:
        """Fold one event into the ordered parts and the usage totals."""
        match event:
            case TextDelta(delta=delta):
                self.tally.add(event)
                if not (self.parts and self.parts[-1]["type"] == "text"):
                    self.parts.append({"type": "text", "text": ""})
                self._pieces.append(delta)
            case ToolCall(id=call_id, name=name, args=args):
                self._settle()
                self.parts.append({"type": "tool", "id": call_id, "name": name, "args": args,
                                   "output": None, "is_error": False, "seconds": None})
            case ToolOutput():
                for part in self.parts:
                    if part["type"] == "tool" and part["id"] == event.id:
                        part.update(output=event.output, is_error=event.is_error, seconds=event.seconds)
            case Usage():
                self.tally.add(event)
                self.stop_reason = event.stop_reason or self.stop_reason

    def _settle(self) -> None:
        """Join the open text part's deltas into it."""
        if self._pieces:
            self.parts[-1]["text"] += "".join(self._pieces)
            self._pieces.clear()
