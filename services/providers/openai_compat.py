"""OpenAI and any OpenAI-compatible server (Ollama, vLLM, Groq...) through the `openai` SDK.

Streams are read raw, through `with_streaming_response`: the SDK still owns the HTTP client, auth, base URL,
timeouts and its errors for non-2xx statuses, but each event is one `json.loads` rather than a pydantic model
per chunk (issue #9: the models took ~70 µs a chunk and a third of the event loop under load).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import anyio
import httpx

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
from services.providers.sse import SSEDataDecoder

if TYPE_CHECKING:  # the SDK takes ~0.4 s to import: only when an OpenAI-compatible model is first used
    import openai

OPENAI_MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1"]
DRAIN_S = 0.1  # after [DONE], how long to read on so an HTTP/1.1 connection can be reused (as the SDK does)

# A raw body raises its HTTP library's errors: httpx2 from openai 3 on, httpx before (the SDK's own list).
_TIMEOUT_ERRORS: tuple[type[Exception], ...] = (httpx.TimeoutException,)
_TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.RequestError, ssl.SSLError, anyio.EndOfStream)
try:
    import httpx2
except ImportError:  # pragma: no cover - openai < 3
    pass
else:
    _TIMEOUT_ERRORS += (httpx2.TimeoutException,)
    _TRANSPORT_ERRORS += (httpx2.RequestError,)


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
        import openai

        if self._client is None:
            self._client = openai.AsyncOpenAI(
                api_key=self._api_key or "not-needed", base_url=self._base_url,
                timeout=self._timeout_s, max_retries=0)
        return self._client

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        """Stream a chat completion; closing the generator closes the HTTP response."""
        import openai

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
        reply = _Reply(self.name)
        try:
            async with self.client().chat.completions.with_streaming_response.create(**kwargs) as response:
                body = response.http_response
                chunks = body.aiter_bytes()
                events = SSEDataDecoder()
                try:
                    async for raw in chunks:
                        # One delta per read, not per chunk: a busy server that reads several chunks at
                        # once then handles one event for them all, so its cost falls as its load rises.
                        texts: list[str] = []
                        for data in events.feed(raw):
                            try:
                                texts += reply.feed(data, body.request)
                            except Exception:
                                if texts:  # what came before a failure is still shown and kept
                                    yield TextDelta(delta="".join(texts))
                                raise
                        if texts:
                            yield TextDelta(delta="".join(texts))
                        if reply.done:
                            await _drain(body.http_version, chunks)
                            break
                # Status errors were raised, as the SDK's, on entering; the raw body's errors are ours to wrap.
                except _TIMEOUT_ERRORS as exc:
                    raise openai.APITimeoutError(request=body.request) from exc
                except _TRANSPORT_ERRORS as exc:
                    raise openai.APIConnectionError(request=body.request) from exc
        except openai.OpenAIError as exc:
            raise translate_openai_error(self.name, exc) from exc
        for index in sorted(reply.calls):
            call = reply.calls[index]
            yield ToolCall(id=call["id"] or f"call_{index}", name=call["name"], args=parse_args(call["arguments"]))
        yield Usage(input_tokens=reply.input_tokens, output_tokens=reply.output_tokens,
                    cost_usd=cost_usd(self.name, request.model, reply.input_tokens, reply.output_tokens),
                    provider=self.name, model=request.model)


class _Reply:
    """What the chunks add up to besides text: tool calls (they arrive in fragments, by index) and usage."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: dict[int, dict[str, str]] = {}
        self.input_tokens = self.output_tokens = 0
        self.done = False

    def feed(self, data: bytes, request: Any) -> list[str]:
        """One event's data; returns its text deltas. `[DONE]` ends the reply; an error event raises."""
        if self.done:
            return []
        if data.startswith(b"[DONE]"):
            self.done = True
            return []
        texts: list[str] = []
        try:
            chunk = json.loads(data)
            if error := chunk.get("error"):  # as the SDK: a server reporting a failure mid-stream
                import openai

                message = error.get("message") if isinstance(error, dict) else None
                raise openai.APIError(message if isinstance(message, str) and message
                                      else "An error occurred during streaming", request=request, body=error)
            if (usage := chunk.get("usage")) is not None:
                self.input_tokens = usage.get("prompt_tokens") or 0
                self.output_tokens = usage.get("completion_tokens") or 0
            for choice in chunk.get("choices") or ():
                if not (delta := choice.get("delta")):
                    continue
                if content := delta.get("content"):
                    texts.append(content)
                for frag in delta.get("tool_calls") or ():
                    call = self.calls.setdefault(frag["index"], {"id": "", "name": "", "arguments": ""})
                    call["id"] = frag.get("id") or call["id"]
                    if (function := frag.get("function")) is not None:
                        call["name"] += function.get("name") or ""
                        call["arguments"] += function.get("arguments") or ""
        except (ValueError, TypeError, AttributeError, KeyError) as exc:  # not JSON, or not a chunk's shape
            raise ProviderUnavailable(f"{self.name} sent a malformed stream chunk") from exc
        return texts


async def _drain(http_version: str, chunks: AsyncIterator[bytes]) -> None:
    """Read what follows `[DONE]` (normally just the body's end), briefly, so the connection goes back to the pool."""
    if http_version != "HTTP/1.1":
        return  # HTTP/2 closes the stream and keeps the connection anyway
    with contextlib.suppress(TimeoutError, *_TRANSPORT_ERRORS):
        async with asyncio.timeout(DRAIN_S):
            async for _ in chunks:
                pass


def translate_openai_error(name: str, exc: openai.OpenAIError) -> ProviderError:
    """SDK errors as ours, with a message a person can act on."""
    import openai

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
