"""What every provider is: capability attributes and one async streaming method."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from services.core.events import Event, ToolCall


@dataclass(frozen=True, kw_only=True, slots=True)
class ChatMessage:
    """One message as a model sees it; assistant turns may carry tool calls, `tool` turns a result."""

    role: str
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    is_error: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolSpec:
    """A tool as offered to a model."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, kw_only=True, slots=True)
class ChatRequest:
    """A provider-neutral request; `model` is the name within the provider."""

    model: str
    messages: list[ChatMessage]
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    tools: tuple[ToolSpec, ...] = ()
    # A JSON Schema the reply must match (structured output), enforced natively by each provider:
    # OpenAI-compatible response_format json_schema (json_object where refused), Anthropic and Bedrock a
    # forced tool with this input schema, the embedded model a llama.cpp grammar. The reply's text is the JSON.
    response_schema: dict[str, Any] | None = None
    schema_name: str = "response"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelInfo:
    """A model as listed by `GET /api/models`."""

    id: str
    provider: str
    available: bool
    reason: str | None
    supports_tools: bool


class Provider(ABC):
    """A source of streamed completions; translates SDK chunks and errors at the boundary."""

    name: ClassVar[str]
    supports_tools: ClassVar[bool] = False

    @abstractmethod
    def models(self) -> list[str]:
        """Model names this provider offers (for the picker)."""

    def unavailable_reason(self) -> str | None:
        """Why this provider cannot be used right now (e.g. which key is missing), or None."""
        return None

    def context_tokens(self, model: str) -> int | None:
        """The model's context window in tokens, when it is small enough to matter."""
        return None

    def accepts(self, model: str) -> bool:
        """Whether a model name is valid here (servers may host models we do not list)."""
        return model in self.models()

    async def list_models(self) -> list[str]:
        """The models the server says it has (GET /v1/models and the like); the built-in names by default.

        The registry caches the answer briefly and falls back to `models()` when this raises.
        """
        return self.models()

    @abstractmethod
    def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        """Yield `TextDelta`s, any `ToolCall`s the model asks for, then one `Usage`; raise our errors."""

    def info(self) -> list[ModelInfo]:
        """This provider's models with their availability."""
        reason = self.unavailable_reason()
        return [ModelInfo(id=f"{self.name}/{m}", provider=self.name, available=reason is None,
                          reason=reason, supports_tools=self.supports_tools)
                for m in self.models()]


def as_dicts(request: ChatRequest) -> list[dict[str, Any]]:
    """OpenAI-style messages, system first, with tool calls and tool results."""
    head: list[dict[str, Any]] = [{"role": "system", "content": request.system}] if request.system else []
    return head + [_openai_message(m) for m in request.messages]


def _openai_message(m: ChatMessage) -> dict[str, Any]:
    """One message in the OpenAI chat format."""
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content}
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [{"id": c.id, "type": "function",
                              "function": {"name": c.name, "arguments": json.dumps(c.args)}}
                             for c in m.tool_calls]
    return out


def estimate_tokens(text: str) -> int:
    """A token count for text when the server reports none (about four characters a token in English)."""
    return tokens_for_chars(len(text))


def tokens_for_chars(chars: int) -> int:
    """About four characters a token, rounded up."""
    return (chars + 3) // 4


def parse_args(text: str) -> dict[str, Any]:
    """A model's JSON arguments; unparsable text is kept under `_raw` for the tool layer to refuse."""
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {"_raw": text}
    return value if isinstance(value, dict) else {"_raw": text}


def alternate_turns(turns: list[tuple[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Role/content-block turns with adjacent turns of one role merged (Anthropic and Bedrock require it)."""
    out: list[dict[str, Any]] = []
    for role, blocks in turns:
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": list(blocks)})
    return out
