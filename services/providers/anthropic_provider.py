"""Anthropic's Messages API through the `anthropic` SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from services.errors import (
    ProviderAuth,
    ProviderBadRequest,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from services.events import Event, TextDelta, ToolCall, Usage
from services.pricing import cost_usd
from services.providers.base import ChatMessage, ChatRequest, Provider, alternate_turns

if TYPE_CHECKING:  # the SDK takes ~1 s to import: only when an Anthropic model is first used
    import anthropic

ANTHROPIC_MODELS = ["claude-3-5-haiku-latest", "claude-sonnet-4-0"]


class AnthropicProvider(Provider):
    """Streams `messages.stream`; the system prompt travels separately, as Anthropic wants."""

    name = "anthropic"
    supports_tools = True

    def __init__(self, *, api_key: str | None, timeout_s: float = 60.0) -> None:
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._client: anthropic.AsyncAnthropic | None = None

    def models(self) -> list[str]:
        """Well-known model names."""
        return list(ANTHROPIC_MODELS)

    def accepts(self, model: str) -> bool:
        """Any claude model name may be tried."""
        return bool(model.strip())

    def unavailable_reason(self) -> str | None:
        """A key is required."""
        return None if self._api_key else "set ANTHROPIC_API_KEY to use Anthropic models"

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        """Stream text deltas, then usage from the final message."""
        if (reason := self.unavailable_reason()) is not None:
            raise ProviderAuth(reason)
        import anthropic

        if self._client is None:
            self._client = anthropic.AsyncAnthropic(api_key=self._api_key, timeout=self._timeout_s,
                                                    max_retries=0)
        kwargs: dict[str, Any] = {"model": request.model, "max_tokens": request.max_tokens or 1024,
                                  "messages": anthropic_messages(request.messages)}
        if request.system:
            kwargs["system"] = request.system
        if request.tools:
            kwargs["tools"] = [{"name": t.name, "description": t.description, "input_schema": t.parameters}
                               for t in request.tools]
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        try:
            async with self._client.messages.stream(**kwargs) as stream:
                async for text in stream.text_stream:
                    yield TextDelta(delta=text)
                final = await stream.get_final_message()
        except anthropic.AnthropicError as exc:
            raise _translate(exc) from exc
        for block in final.content:
            if block.type == "tool_use":
                yield ToolCall(id=block.id, name=block.name,
                               args=block.input if isinstance(block.input, dict) else {})
        tin, tout = final.usage.input_tokens, final.usage.output_tokens
        yield Usage(input_tokens=tin, output_tokens=tout, provider=self.name, model=request.model,
                    cost_usd=cost_usd(self.name, request.model, tin, tout))


def anthropic_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Our messages in Anthropic's shape: tool calls as `tool_use`, results as user `tool_result`s."""
    turns: list[tuple[str, list[dict[str, Any]]]] = []
    for m in messages:
        if m.role == "tool":
            turns.append(("user", [{"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content,
                                    "is_error": m.is_error}]))
        elif m.role in ("user", "assistant"):
            blocks: list[dict[str, Any]] = [{"type": "text", "text": m.content}] if m.content else []
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.args} for c in m.tool_calls]
            turns.append((m.role, blocks))
    return alternate_turns(turns)


def _translate(exc: anthropic.AnthropicError) -> ProviderError:
    """SDK errors as ours."""
    import anthropic

    if isinstance(exc, anthropic.AuthenticationError | anthropic.PermissionDeniedError):
        return ProviderAuth("Anthropic rejected the API key: check ANTHROPIC_API_KEY")
    if isinstance(exc, anthropic.RateLimitError):
        return ProviderRateLimited("Anthropic is rate limiting requests; try again shortly")
    if isinstance(exc, anthropic.APITimeoutError | anthropic.APIConnectionError):
        return ProviderUnavailable("cannot reach Anthropic")
    if isinstance(exc, anthropic.APIStatusError):
        if exc.status_code >= 500:
            return ProviderUnavailable(f"Anthropic failed on its side (HTTP {exc.status_code})")
        return ProviderBadRequest(f"Anthropic refused the request (HTTP {exc.status_code})")
    return ProviderUnavailable(f"Anthropic stream failed: {type(exc).__name__}")
