"""OpenAI and any OpenAI-compatible server (Ollama, vLLM, Groq...) through the `openai` SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai

from services.errors import (
    ProviderAuth,
    ProviderBadRequest,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from services.events import Event, TextDelta, ToolCall, Usage
from services.pricing import cost_usd
from services.providers.base import ChatRequest, Provider, as_dicts, parse_args

OPENAI_MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1"]


class OpenAICompatProvider(Provider):
    """Chat completions over HTTP; `name` is `openai` or the configured endpoint's name."""

    supports_tools = True

    def __init__(self, *, name: str, api_key: str | None, base_url: str | None,
                 models: list[str] | None = None, key_required: bool = True,
                 supports_tools: bool = True, timeout_s: float = 60.0) -> None:
        self.name = name  # type: ignore[misc]  # instance-level name: one class, many endpoints
        self.supports_tools = supports_tools  # type: ignore[misc]
        self._api_key = api_key
        self._base_url = base_url
        self._models = models if models is not None else OPENAI_MODELS
        self._key_required = key_required
        self._timeout_s = timeout_s
        self._client: openai.AsyncOpenAI | None = None

    def models(self) -> list[str]:
        """Configured or well-known model names."""
        return list(self._models)

    def accepts(self, model: str) -> bool:
        """Servers host more models than we list; any non-empty name may be tried."""
        return bool(model.strip())

    def unavailable_reason(self) -> str | None:
        """OpenAI proper needs a key; local compatible servers do not."""
        if self._key_required and not self._api_key:
            return "set OPENAI_API_KEY to use OpenAI models"
        return None

    def client(self) -> openai.AsyncOpenAI:
        """One SDK client per provider; retries are ours (fallback chain), not the SDK's."""
        if self._client is None:
            self._client = openai.AsyncOpenAI(
                api_key=self._api_key or "not-needed", base_url=self._base_url,
                timeout=self._timeout_s, max_retries=0)
        return self._client

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        """Stream a chat completion; closing the generator closes the HTTP response."""
        if (reason := self.unavailable_reason()) is not None:
            raise ProviderAuth(f"{self.name}: {reason}")
        kwargs: dict[str, Any] = {"model": request.model, "messages": as_dicts(request), "stream": True,
                                  "stream_options": {"include_usage": True}}
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.max_tokens is not None:
            kwargs["max_tokens"] = request.max_tokens
        if request.tools:
            kwargs["tools"] = [{"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": t.parameters}}
                for t in request.tools]
        input_tokens = output_tokens = 0
        calls: dict[int, dict[str, str]] = {}  # tool calls arrive in fragments, by index
        try:
            stream = await self.client().chat.completions.create(**kwargs)
            async with stream:
                async for chunk in stream:
                    if chunk.usage is not None:
                        input_tokens = chunk.usage.prompt_tokens or 0
                        output_tokens = chunk.usage.completion_tokens or 0
                    for choice in chunk.choices:
                        if choice.delta and choice.delta.content:
                            yield TextDelta(delta=choice.delta.content)
                        for frag in (choice.delta.tool_calls or []) if choice.delta else []:
                            call = calls.setdefault(frag.index, {"id": "", "name": "", "arguments": ""})
                            call["id"] = frag.id or call["id"]
                            if frag.function is not None:
                                call["name"] += frag.function.name or ""
                                call["arguments"] += frag.function.arguments or ""
        except openai.OpenAIError as exc:
            raise translate_openai_error(self.name, exc) from exc
        except ValueError as exc:  # the SDK lets a malformed chunk's JSONDecodeError through
            raise ProviderUnavailable(f"{self.name} sent a malformed stream chunk") from exc
        for index in sorted(calls):
            call = calls[index]
            yield ToolCall(id=call["id"] or f"call_{index}", name=call["name"], args=parse_args(call["arguments"]))
        yield Usage(input_tokens=input_tokens, output_tokens=output_tokens,
                    cost_usd=cost_usd(self.name, request.model, input_tokens, output_tokens),
                    provider=self.name, model=request.model)


def translate_openai_error(name: str, exc: openai.OpenAIError) -> ProviderError:
    """SDK errors as ours, with a message a person can act on."""
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return ProviderAuth(f"{name} rejected the API key: check the key setting for {name}")
    if isinstance(exc, openai.RateLimitError):
        retry = exc.response.headers.get("retry-after")
        return ProviderRateLimited(f"{name} is rate limiting requests; try again shortly",
                                   retry_after=_float(retry))
    if isinstance(exc, openai.APITimeoutError):
        return ProviderUnavailable(f"{name} timed out")
    if isinstance(exc, openai.APIConnectionError):
        return ProviderUnavailable(f"cannot reach {name}: is the server running and the base URL right?")
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500:
            return ProviderUnavailable(f"{name} failed on its side (HTTP {exc.status_code})")
        if exc.status_code == 404:
            return ProviderBadRequest(f"{name} does not know that model (HTTP 404)")
        return ProviderBadRequest(f"{name} refused the request (HTTP {exc.status_code})")
    return ProviderUnavailable(f"{name} stream failed: {type(exc).__name__}")


def _float(value: str | None) -> float | None:
    """A header value as seconds, if numeric."""
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
