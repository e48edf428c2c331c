"""What every provider is: capability attributes and one async streaming method."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from services.events import Event


@dataclass(frozen=True, kw_only=True, slots=True)
class ChatMessage:
    """One message as a model sees it."""

    role: str
    content: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ChatRequest:
    """A provider-neutral request; `model` is the name within the provider."""

    model: str
    messages: list[ChatMessage]
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
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

    @abstractmethod
    def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        """Yield `TextDelta`s then one `Usage`; raise our `ProviderError`s."""

    def info(self) -> list[ModelInfo]:
        """This provider's models with their availability."""
        reason = self.unavailable_reason()
        return [ModelInfo(id=f"{self.name}/{m}", provider=self.name, available=reason is None,
                          reason=reason, supports_tools=self.supports_tools)
                for m in self.models()]


def as_dicts(request: ChatRequest) -> list[dict[str, str]]:
    """OpenAI-style role/content dicts, system first."""
    head = [{"role": "system", "content": request.system}] if request.system else []
    return head + [{"role": m.role, "content": m.content} for m in request.messages]
