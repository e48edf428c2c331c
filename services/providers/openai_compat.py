"""OpenAI and any OpenAI-compatible server (Ollama, vLLM, Groq...) through the `openai` SDK.

Streams are read raw, through `with_streaming_response`: the SDK still owns the HTTP client, auth, base URL,
timeouts and its errors for non-2xx statuses, but each event is one `json.loads` rather than a pydantic model
per chunk (issue #9: the models took ~70 µs a chunk and a third of the event loop under load).
Chunks are folded by `openai_chunks`, errors translated by `openai_errors`.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from services.core.errors import ProviderAuth, ProviderBadRequest, ProviderError, ProviderUnavailable
from services.core.events import Event, ToolCall, Usage
from services.core.pricing import cost_usd
from services.providers.base import ChatRequest, Provider, as_dicts, estimate_tokens, parse_args
from services.providers.openai_chunks import ChunkReader
from services.providers.openai_errors import (
    is_html,
    names_a_model,
    refuses_json_schema,
    server_detail,
    translate_openai_error,
)
from services.providers.sse import GONE_ERRORS, PROTOCOL_ERRORS, TIMEOUT_ERRORS, TRANSPORT_ERRORS, text_deltas

if TYPE_CHECKING:  # the SDK takes ~0.4 s to import: only when an OpenAI-compatible model is first used
    import openai

OPENAI_MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1"]
LIST_TIMEOUT_S = 5.0  # a model listing or a diagnostic probe; the registry bounds listings more tightly
# Listed ids that are not chat models (OpenAI and proxies list embeddings, speech, images...): kept out of pickers.
NOT_CHAT = re.compile(r"embed|whisper|tts|dall-e|davinci|babbage|moderation|transcribe|realtime|audio|image|sora")
MESSAGE_OVERHEAD = 4  # tokens a chat template adds per message (role markers), for estimates

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
        self._configured = list(models or [])  # names an admin listed for this endpoint: always offered
        self._key_required = key_required
        self._timeout_s = timeout_s
        self._client: openai.AsyncOpenAI | None = None
        self._no_json_schema: set[str] = set()  # models whose server refused response_format json_schema

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

    async def list_models(self) -> list[str]:
        """The endpoint's configured models, then the chat models the server lists at `GET {base}/models`."""
        import openai

        if (reason := self.unavailable_reason()) is not None:
            raise ProviderAuth(f"{self.name}: {reason}")
        try:
            ids = [m.id async for m in self.client().models.list(timeout=LIST_TIMEOUT_S)]
        except openai.OpenAIError as exc:
            raise self._translate(exc) from exc
        listed = sorted(i for i in ids if not NOT_CHAT.search(i.lower()))
        return list(dict.fromkeys([*self._configured, *listed]))

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        """Stream a chat completion; closing the generator closes the HTTP response."""
        import openai

        if (reason := self.unavailable_reason()) is not None:
            raise ProviderAuth(f"{self.name}: {reason}")
        kwargs = self._kwargs(request)
        reply = ChunkReader(self.name)
        try:
            async with contextlib.AsyncExitStack() as stack:
                response = await self._open(stack, kwargs, request.model)
                body = response.http_response
                try:
                    async for delta in text_deltas(body, reply):
                        yield delta
                # Status errors were raised, as the SDK's, on entering; the raw body's errors are ours to wrap.
                # A body that simply ends (no [DONE], no finish_reason) is not an error: stop_reason says so.
                except TIMEOUT_ERRORS as exc:
                    raise openai.APITimeoutError(request=body.request) from exc
                except TRANSPORT_ERRORS as exc:  # it answered, then the connection broke: not "cannot reach"
                    raise ProviderUnavailable(f"{self.name} broke off the reply: the connection closed before "
                                              "its end; try again") from exc
        except openai.OpenAIError as exc:
            raise await self._explain(exc, request.model) from exc
        for index in sorted(reply.calls):
            call = reply.calls[index]
            yield ToolCall(id=call["id"] or f"call_{index}", name=call["name"], args=parse_args(call["arguments"]))
        yield self._usage(request, kwargs, reply)

    def _kwargs(self, request: ChatRequest) -> dict[str, Any]:
        """The SDK call's arguments for a request."""
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
        if request.response_schema is not None:
            if request.model in self._no_json_schema:
                kwargs["response_format"] = _json_object(request.response_schema)
            else:
                kwargs["response_format"] = {"type": "json_schema", "json_schema": {
                    "name": request.schema_name, "schema": request.response_schema, "strict": True}}
        if request.extra:  # server-specific fields (e.g. tool_choice, repeat_penalty), sent as they are
            kwargs["extra_body"] = dict(request.extra)
        return kwargs

    async def _open(self, stack: contextlib.AsyncExitStack, kwargs: dict[str, Any], model: str) -> Any:
        """Send the request; resend once in JSON mode if `json_schema` is refused, once if nothing answered."""
        import openai

        create = self.client().chat.completions.with_streaming_response.create
        resent = False
        while True:
            try:
                return await stack.enter_async_context(create(**kwargs))
            except openai.APIStatusError as exc:
                if (kwargs.get("response_format") or {}).get("type") != "json_schema" or not refuses_json_schema(exc):
                    raise
                self._no_json_schema.add(model)
                kwargs["response_format"] = _json_object(kwargs["response_format"]["json_schema"]["schema"])
            except openai.APIConnectionError as exc:
                # llama-cpp-python closes (or resets) a connection after a stream that failed on its side, without
                # saying so: the next request on it gets no answer at all, so nothing was done; send it again.
                if resent or not _unanswered(exc):
                    raise
                resent = True

    def _usage(self, request: ChatRequest, kwargs: dict[str, Any], reply: ChunkReader) -> Usage:
        """The reply's one Usage: the server's counts, else ours (marked estimated), and why it stopped."""
        estimated = reply.input_tokens is None or reply.output_tokens is None
        input_tokens = reply.input_tokens if reply.input_tokens is not None else _estimate_prompt(kwargs)
        output_tokens = reply.output_tokens if reply.output_tokens is not None else reply.estimated_output()
        return Usage(input_tokens=input_tokens, output_tokens=output_tokens,
                     cost_usd=cost_usd(self.name, request.model, input_tokens, output_tokens),
                     provider=self.name, model=request.model, stop_reason=reply.stop_reason(),
                     estimated=True if estimated else None)

    def _translate(self, exc: openai.OpenAIError, model: str = "") -> ProviderError:
        """An SDK error as ours, with no key in its message."""
        return translate_openai_error(self.name, exc, model=model, secrets=(self._api_key or "",))

    async def _explain(self, exc: openai.OpenAIError, model: str) -> ProviderError:
        """As `_translate`, but a 404 that names no model is looked into: is the base URL missing /v1?"""
        import openai

        if not isinstance(exc, openai.APIStatusError) or exc.status_code != 404:
            return self._translate(exc, model)
        if names_a_model(server_detail(exc)) and not is_html(exc):
            return self._translate(exc, model)
        base = str(self.client().base_url).rstrip("/")
        if await self._lists_models(base):  # the API is here: then it is the model the server does not have
            detail = server_detail(exc, (self._api_key or "",)) or "Not Found"
            return ProviderBadRequest(f"{self.name} has no model '{model}' or no chat endpoint (HTTP 404): {detail}")
        setting = ("OPENAI_BASE_URL" if self.name == "openai"
                   else f"the base_url of '{self.name}' in LANTERN_OPENAI_COMPAT")
        if base.endswith("/v1"):
            return ProviderBadRequest(f"the server at {base} has no /chat/completions — is {setting} right?")
        hint = f" ({base}/v1 is where its API answers)" if await self._lists_models(base + "/v1") else ""
        return ProviderBadRequest(f"the server at {base} has no /chat/completions — does {setting} end in /v1?{hint}")

    async def _lists_models(self, base: str) -> bool:
        """Whether `GET {base}/models` answers as an OpenAI-compatible API does (a quick probe, errors are no)."""
        import openai

        client = self.client().with_options(base_url=base, timeout=min(self._timeout_s, LIST_TIMEOUT_S))
        try:
            await client.models.list()
        except (openai.OpenAIError, ValueError):
            return False
        return True


def _json_object(schema: dict[str, Any]) -> dict[str, Any]:
    """JSON mode for servers that refuse `json_schema`, with the schema beside it (where llama.cpp takes it)."""
    return {"type": "json_object", "schema": schema}


def _unanswered(exc: Exception) -> bool:
    """Whether a connection error is the connection closing or resetting before any byte of an answer."""
    cause = exc.__cause__
    if isinstance(cause, PROTOCOL_ERRORS):
        return "without sending a response" in str(cause)
    return isinstance(cause, GONE_ERRORS)


def _estimate_prompt(kwargs: dict[str, Any]) -> int:
    """Prompt tokens from what was sent (messages, tool calls, tool specs), for servers that report none."""
    total = 0
    for message in kwargs["messages"]:
        total += MESSAGE_OVERHEAD + estimate_tokens(message.get("content") or "")
        if calls := message.get("tool_calls"):
            total += estimate_tokens(json.dumps(calls))
    if tools := kwargs.get("tools"):
        total += estimate_tokens(json.dumps(tools))
    return total


