"""The event vocabulary: everything that streams is an async iterator of these.

Pages `match` on the classes; the API writes `event: <type>` with `to_data()` as JSON;
storage persists the wire form at message/step/turn boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal

RunStatus = Literal["running", "completed", "stopped", "failed", "interrupted"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Event:
    """Base of every event; `type` is the wire name."""

    type: ClassVar[str] = "event"

    def to_data(self) -> dict[str, Any]:
        """The JSON payload sent on the wire (fields read directly: asdict's deep copy cost 10x per token)."""
        names = _FIELD_NAMES.get(type(self))
        if names is None:
            names = _FIELD_NAMES[type(self)] = tuple(f.name for f in fields(self))
        return {name: value for name in names if (value := getattr(self, name)) is not None}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


@dataclass(frozen=True, kw_only=True, slots=True)
class TextDelta(Event):
    """A piece of generated text, with the speaking agent where there are several."""

    type: ClassVar[str] = "text.delta"
    delta: str
    agent: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolCall(Event):
    """The model asked for a tool."""

    type: ClassVar[str] = "tool.call"
    id: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolOutput(Event):
    """A tool's result (or error) as the model will see it."""

    type: ClassVar[str] = "tool.output"
    id: str
    name: str
    output: str
    is_error: bool = False
    seconds: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class StepStarted(Event):
    """A pipeline step began."""

    type: ClassVar[str] = "step.started"
    index: int
    title: str
    model: str
    prompt: str


@dataclass(frozen=True, kw_only=True, slots=True)
class StepFinished(Event):
    """A pipeline step ended."""

    type: ClassVar[str] = "step.finished"
    index: int
    ok: bool
    response: str
    seconds: float
    usage: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class TurnFinished(Event):
    """A duet turn ended."""

    type: ClassVar[str] = "turn.finished"
    turn: int
    agent: str
    content: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Usage(Event):
    """Tokens and cost of one model call."""

    type: ClassVar[str] = "usage"
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    provider: str = ""
    model: str = ""
    # Why the model stopped (STOP_REASONS); None when the provider cannot say.
    stop_reason: str | None = None
    # True when the server reported no token counts and these were counted (or estimated) by Lantern.
    estimated: bool | None = None


# Why a reply ended: it was finished; it hit the length limit (max_tokens); it asked for tools; the server
# ended the stream early (no [DONE] / no final event); a content filter cut it.
STOP_REASONS = ("end", "length", "tool_calls", "interrupted", "content_filter")


@dataclass(frozen=True, kw_only=True, slots=True)
class ProviderFallback(Event):
    """A provider failed and the chain moved on."""

    type: ClassVar[str] = "provider.fallback"
    from_: str
    to: str
    reason: str

    def to_data(self) -> dict[str, Any]:
        """`from` is a keyword in Python, not on the wire."""
        return {"from": self.from_, "to": self.to, "reason": self.reason}


@dataclass(frozen=True, kw_only=True, slots=True)
class Error(Event):
    """Something went wrong; `type_` is one of our error types."""

    type: ClassVar[str] = "error"
    error_type: str
    message: str

    def to_data(self) -> dict[str, Any]:
        """Wire form uses `type` for the error type."""
        return {"type": self.error_type, "message": self.message}


@dataclass(frozen=True, kw_only=True, slots=True)
class Done(Event):
    """The run ended with this status."""

    type: ClassVar[str] = "done"
    status: RunStatus
    run_id: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (TextDelta, ToolCall, ToolOutput, StepStarted, StepFinished, TurnFinished, Usage,
                ProviderFallback, Error, Done)
}


def from_wire(type_: str, data: dict[str, Any]) -> Event:
    """Rebuild an event from its wire form (replay of stored runs)."""
    if type_ == ProviderFallback.type:
        return ProviderFallback(from_=data["from"], to=data["to"], reason=data["reason"])
    if type_ == Error.type:
        return Error(error_type=data["type"], message=data["message"])
    return EVENT_TYPES[type_](**data)
