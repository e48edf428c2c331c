"""A real provider fed a script: deterministic replies for tests and demos.

A script is `{"replies": [reply, ...], "delay": seconds_between_chunks, "chunk": chars_per_chunk}`;
the n-th call plays reply n (cycling). A reply is text, or `{"text": ..., "tool_calls": [{"name": ...,
"args": {...}}], "error": {"type": "unavailable"|"rate_limited"|"auth"|"bad_request", "message": ...},
"hang": true, "stop_reason": "length"}` — tool calls follow the text, the error is raised after it, `hang`
waits until cancelled, `stop_reason` is reported with the usage. Model `echo` answers with the last user
message.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from services.core.errors import (
    ProviderAuth,
    ProviderBadRequest,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from services.core.events import Event, TextDelta, ToolCall, Usage
from services.providers.base import ChatRequest, ModelInfo, Provider

ERRORS: dict[str, type[ProviderError]] = {
    "unavailable": ProviderUnavailable, "rate_limited": ProviderRateLimited,
    "auth": ProviderAuth, "bad_request": ProviderBadRequest,
}


class ScriptedProvider(Provider):
    """Plays scripts by model name; counts calls per model so replies advance."""

    name = "scripted"
    supports_tools = True  # the provider can play tool calls; each model is listed by whether its script does

    def __init__(self, scripts: dict[str, Any] | None = None) -> None:
        self.scripts: dict[str, Any] = dict(scripts or {})
        self.calls: dict[str, int] = {}
        self.requests: list[ChatRequest] = []

    def models(self) -> list[str]:
        """`echo` plus every loaded script."""
        return ["echo", *self.scripts]

    def info(self) -> list[ModelInfo]:
        """Models listed as tool-capable only when their script calls tools (`echo` never does)."""
        return [replace(m, supports_tools=self.calls_tools(m.id.partition("/")[2])) for m in super().info()]

    def calls_tools(self, model: str) -> bool:
        """Whether any reply of the model's script calls a tool."""
        replies = (self.scripts.get(model) or {}).get("replies") or []
        return any(isinstance(r, dict) and r.get("tool_calls") for r in replies)

    def add_script(self, model: str, replies: list[Any], *, delay: float = 0.0, chunk: int = 4) -> None:
        """Register (or replace) a script."""
        self.scripts[model] = {"replies": replies, "delay": delay, "chunk": chunk}
        self.calls[model] = 0

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        """Play the next reply of the model's script."""
        self.requests.append(request)
        script = self.scripts.get(request.model, {"replies": [None], "delay": 0.0, "chunk": 4})
        n = self.calls.get(request.model, 0)
        self.calls[request.model] = n + 1
        replies = script.get("replies") or [None]
        reply = replies[n % len(replies)]
        if reply is None:  # echo
            last = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
            reply = f"You said: {last}"
        spec = reply if isinstance(reply, dict) else {"text": reply}
        text = str(spec.get("text", ""))
        size = max(1, int(script.get("chunk", 4)))
        delay = float(script.get("delay", 0.0))
        for i in range(0, len(text), size):
            if delay:
                await asyncio.sleep(delay)
            yield TextDelta(delta=text[i:i + size])
        for i, call in enumerate(spec.get("tool_calls") or []):
            yield ToolCall(id=call.get("id", f"call_{n}_{i}"), name=call["name"], args=call.get("args", {}))
        if spec.get("hang"):
            await asyncio.Event().wait()
        if err := spec.get("error"):
            raise ERRORS.get(err.get("type", ""), ProviderUnavailable)(err.get("message", "scripted failure"))
        words_in = sum(len(m.content.split()) for m in request.messages)
        yield Usage(input_tokens=words_in, output_tokens=len(text.split()),
                    provider=self.name, model=request.model, stop_reason=spec.get("stop_reason"))
