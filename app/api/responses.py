"""What the JSON routes answer, for /docs and clients' code generators (../shared/API.md in schema form).

Documentation only: routes still build their dicts (`responses=` on each route, not `response_model`, so a
field added here and forgotten there cannot vanish from a response); tests/api/test_response_schemas.py checks
real responses against these schemas, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from services.studio.envelope import Envelope

RunStatus = Literal["running", "completed", "stopped", "failed", "interrupted"]


class Health(BaseModel):
    """Liveness; 503 with `degraded` when the database (or, as a replica, the bus) is unreachable."""

    status: Literal["ok", "degraded"]
    version: str
    database: Literal["ok", "unreachable"]
    bus: Literal["ok", "down"] | None = Field(None, description="replica mode only: whether it hears the others")


class ModelOut(BaseModel):
    """A model and whether it can be used here (`reason` says why not, never a key)."""

    id: str
    provider: str
    available: bool
    reason: str | None
    supports_tools: bool


class Models(BaseModel):
    """Every model, and the default."""

    default: str
    models: list[ModelOut]


class Usage(BaseModel):
    """Tokens and cost."""

    input_tokens: int
    output_tokens: int
    cost_usd: float


class ErrorOut(BaseModel):
    """Why a run failed."""

    type: str
    message: str | None


class ReplyMessage(BaseModel):
    """The assistant's message."""

    role: str
    content: str


class ChatReply(BaseModel):
    """A finished chat reply."""

    conversation_id: str
    run_id: str
    trace_id: str
    status: RunStatus
    provider: str | None
    model: str | None
    message: ReplyMessage
    usage: Usage
    error: ErrorOut | None = Field(None, description="present when the reply failed")


class ConversationItem(BaseModel):
    """A conversation in a list."""

    id: str
    title: str
    updated_at: str
    model: str | None
    message_count: int


class ConversationPage(BaseModel):
    """A page of conversations and how many match in all."""

    items: list[ConversationItem]
    total: int


class MessageOut(BaseModel):
    """One message; assistant messages carry their run and usage, `extra` their tool calls and outputs."""

    id: str
    position: int
    parent_id: str | None
    role: str
    content: str
    run_id: str | None
    status: str
    provider: str | None
    model: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: float
    extra: dict[str, Any]
    created_at: str


class ConversationOut(BaseModel):
    """A conversation with every message (all branches), in order."""

    id: str
    user_id: str
    title: str
    model: str | None
    system_prompt: str | None
    temperature: float | None
    leaf_id: str | None
    created_at: str
    updated_at: str
    messages: list[MessageOut]


class RunOut(BaseModel):
    """A run: status, configuration, timings, usage and result (the result is filled when it ends)."""

    id: str
    trace_id: str
    kind: Literal["chat", "duet", "pipeline", "deliverables"]
    status: RunStatus
    conversation_id: str | None
    config: dict[str, Any]
    result: dict[str, Any]
    error: str | None
    error_type: str | None = Field(None, description="present when `error` is")
    input_tokens: int
    output_tokens: int
    cost_usd: float
    started_at: str
    finished_at: str | None
    usage: Usage


class RunPage(BaseModel):
    """A page of runs, newest first."""

    items: list[RunOut]


class RunStarted(BaseModel):
    """A run that has started; follow it at /api/runs/{run_id}/events."""

    run_id: str
    trace_id: str
    status: Literal["running"]


class RunStopped(BaseModel):
    """The run is stopped; its partial output is kept."""

    status: Literal["stopped"]


class AgentChanged(BaseModel):
    """A duet bot as it now is, from its next turn."""

    index: int
    agent: dict[str, Any]


class ModuleKind(BaseModel):
    """One deliverable a module produces."""

    kind: str
    title: str
    platform: str


class ModuleOut(BaseModel):
    """A Studio module."""

    id: str
    deliverables: list[ModuleKind]


class Modules(BaseModel):
    """Every Studio module."""

    modules: list[ModuleOut]


class VersionOut(BaseModel):
    """One saved text of a deliverable."""

    version: int
    content_markdown: str
    note: str
    created_at: str


class DeliverableWithVersions(BaseModel):
    """A deliverable with every version; `approved_version` is the one exported."""

    id: str
    run_id: str
    module: str
    kind: str
    platform: str
    title: str
    hashtags: list[str]
    status: Literal["draft", "approved"]
    approved_version: int | None
    created_at: str
    versions: list[VersionOut]


def documented(model: type[BaseModel], status: int = 200) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that answers `model` with `status`."""
    return {status: {"model": model, "description": (model.__doc__ or "").strip()}}


__all__ = ["Envelope", "documented"]
