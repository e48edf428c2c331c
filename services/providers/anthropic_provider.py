"""Anthropic's Messages API through the `anthropic` SDK, its event stream read raw.

The SDK owns the HTTP client, auth, base URL, timeouts and its errors for non-2xx statuses; the stream is read
as raw server-sent events (`with_streaming_response`, one `json.loads` per event) because the wire format is the
one thing every SDK version pyproject allows agrees on: 0.x, 1.x and 2.x differ in their typed helpers (from 1.0
`messages.stream` and `messages.create` take no `temperature`), not in the events.

Temperature travels in `extra_body`, which every version merges into the request as is. Servers differ on it: the
API version SDK 2.x sends (2026-10-21) refuses sampling parameters on every model, older versions refuse them on
the newest models, proxies accept them. So it is sent, and a model whose server refuses it (a 400 naming
`temperature`) is asked again without it, once, and from then on (the refusal arrives before any output).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from services.core.errors import ProviderAuth, ProviderBadRequest, ProviderError, ProviderUnavailable
from services.core.events import Event, TextDelta, ToolCall, Usage
from services.core.pricing import cost_usd
from services.providers.anthropic_errors import server_says, translate_anthropic_error
from services.providers.base import ChatMessage, ChatRequest, Provider, alternate_turns, estimate_tokens, parse_args
from services.providers.sse import TIMEOUT_ERRORS, TRANSPORT_ERRORS, text_deltas

if TYPE_CHECKING:  # the SDK takes ~1 s to import: only when an Anthropic model is first used, in a worker thread
    import anthropic

log = logging.getLogger(__name__)

ANTHROPIC_MODELS = ["claude-3-5-haiku-latest", "claude-sonnet-4-0"]
DEFAULT_MAX_TOKENS = 8192  # Anthropic requires max_tokens: a reply may be as long as current models allow
OLDER_MAX_TOKENS = 4096  # the Claude 3 (not 3.5+) models' output limit
# Anthropic's stop reasons as ours (STOP_REASONS); pause_turn asks the caller to continue the turn.
STOP_REASONS = {"end_turn": "end", "stop_sequence": "end", "max_tokens": "length", "tool_use": "tool_calls",
                "refusal": "content_filter", "model_context_window_exceeded": "length", "pause_turn": "interrupted"}

class AnthropicProvider(Provider):
    """Streams `/v1/messages`; the system prompt travels separately, as Anthropic wants."""

    name = "anthropic"
    supports_tools = True

    def __init__(self, *, api_key: str | None, base_url: str | None = None, timeout_s: float = 60.0) -> None:
        self._api_key = api_key
        self._base_url = base_url
        self._timeout_s = timeout_s
        self._client: anthropic.AsyncAnthropic | None = None
        self._no_temperature: set[str] = set()  # models whose server refused a temperature

    def models(self) -> list[str]:
        """Well-known model names."""
        return list(ANTHROPIC_MODELS)

    def accepts(self, model: str) -> bool:
        """Any claude model name may be tried."""
        return bool(model.strip())

    def unavailable_reason(self) -> str | None:
        """A key is required."""
        return None if self._api_key else "set ANTHROPIC_API_KEY to use Anthropic models"

    async def list_models(self) -> list[str]:
        """The models the key may use, from `GET /v1/models` (all pages); raises our errors."""
        if (reason := self.unavailable_reason()) is not None:
            raise ProviderAuth(reason)
        client = await self.client()
        import anthropic

        if not hasattr(client, "models"):  # anthropic < 0.41 has no model listing
            raise ProviderUnavailable("this version of the anthropic package cannot list models")
        try:
            return [m.id async for m in client.models.list(limit=100) if getattr(m, "lifecycle", None) != "retired"]
        except anthropic.AnthropicError as exc:
            raise self._translate(exc) from exc

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        """Stream text, then tool calls and usage; closing the generator closes the HTTP response at once."""
        if (reason := self.unavailable_reason()) is not None:
            raise ProviderAuth(reason)
        client = await self.client()
        import anthropic

        schema_tool = request.schema_name if request.response_schema is not None else None
        reply = _Reply(schema_tool)
        try:
            async with contextlib.AsyncExitStack() as stack:
                body = await self._open(stack, client, request)
                try:
                    async for delta in text_deltas(body, reply):
                        yield delta
                # Status errors were raised, as the SDK's, on opening; the raw body's errors are ours to wrap.
                except TIMEOUT_ERRORS as exc:
                    raise anthropic.APITimeoutError(request=body.request) from exc
                except TRANSPORT_ERRORS as exc:
                    raise anthropic.APIConnectionError(request=body.request) from exc
        except anthropic.AnthropicError as exc:
            raise self._translate(exc) from exc
        if text := reply.unsent_text():
            yield TextDelta(delta=text)
        for call in reply.tool_calls():
            yield call
        yield self._usage(request, reply)

    async def client(self) -> anthropic.AsyncAnthropic:
        """One SDK client per provider, made (and the SDK imported) in a worker thread; retries are ours."""
        if self._client is None:
            self._client = await asyncio.to_thread(self._make_client)
        return self._client

    def _make_client(self) -> anthropic.AsyncAnthropic:
        """The SDK client: importing it costs ~1 s and loading CA certificates more; neither belongs on the loop."""
        sdk = importlib.import_module("anthropic")
        client: anthropic.AsyncAnthropic = sdk.AsyncAnthropic(
            api_key=self._api_key, base_url=self._base_url, timeout=self._timeout_s, max_retries=0)
        return client

    async def _open(self, stack: contextlib.AsyncExitStack, client: anthropic.AsyncAnthropic,
                    request: ChatRequest) -> Any:
        """The streaming HTTP response, entered on `stack`; a server refusing temperature is asked without it."""
        import anthropic

        kwargs = self._kwargs(request)
        create = client.messages.with_streaming_response.create
        try:
            response = await stack.enter_async_context(create(**kwargs))
        except anthropic.BadRequestError as exc:
            if "extra_body" not in kwargs or "temperature" not in server_says(exc.body)[1]:
                raise
            log.info("anthropic: the server refuses a temperature for %s; sending none from now on", request.model)
            self._no_temperature.add(request.model)
            response = await stack.enter_async_context(create(**self._kwargs(request)))
        kind = response.http_response.headers.get("content-type", "text/event-stream")
        if not kind.startswith("text/event-stream"):  # a web page or another API answering at that address
            raise ProviderBadRequest(f"Anthropic's address answered with {kind[:60]}, not a stream; check the base URL")
        return response.http_response

    def _kwargs(self, request: ChatRequest) -> dict[str, Any]:
        """The `messages.create` arguments for a request, streamed."""
        kwargs: dict[str, Any] = {"model": request.model,
                                  "max_tokens": request.max_tokens or default_max_tokens(request.model),
                                  "messages": anthropic_messages(request.messages), "stream": True}
        if request.system:
            kwargs["system"] = request.system
        if request.response_schema is not None:
            # Structured output is a forced tool whose input schema is the schema. The schema wins over any tools
            # offered with it: a forced tool cannot be combined with a free choice among others.
            kwargs["tools"] = [{"name": request.schema_name, "input_schema": request.response_schema,
                                "description": "Give the reply as this tool's input, matching its schema."}]
            kwargs["tool_choice"] = {"type": "tool", "name": request.schema_name}
        elif request.tools:
            kwargs["tools"] = [{"name": t.name, "description": t.description, "input_schema": t.parameters}
                               for t in request.tools]
        if request.temperature is not None and request.model not in self._no_temperature:
            # Not a parameter from SDK 1.0 on. Anthropic's range is 0 to 1 (OpenAI's, which pages offer, 0 to 2):
            # clamped, so that a 400 naming temperature means it is refused, not out of range.
            kwargs["extra_body"] = {"temperature": min(max(request.temperature, 0.0), 1.0)}
        return kwargs

    def _usage(self, request: ChatRequest, reply: _Reply) -> Usage:
        """The reply's usage as reported, or estimated where the server said nothing."""
        tin, tout = reply.input_tokens, reply.output_tokens
        if tin is None:
            tin = estimate_tokens(_request_text(request))
        if tout is None:
            tout = estimate_tokens(reply.all_output())
        estimated = True if reply.input_tokens is None or reply.output_tokens is None else None
        return Usage(input_tokens=tin, output_tokens=tout, provider=self.name, model=request.model,
                     cost_usd=cost_usd(self.name, request.model, tin, tout),
                     stop_reason=reply.stop_reason(), estimated=estimated)

    def _translate(self, exc: anthropic.AnthropicError) -> ProviderError:
        """SDK errors as ours, keeping what the server said (without secrets)."""
        return translate_anthropic_error(exc, secret=self._api_key, base_url=self._base_url)


class _Reply:
    """What the events add up to: text, tool calls (their JSON in pieces, by block index), usage, the stop reason."""

    def __init__(self, schema_tool: str | None) -> None:
        self.schema_tool = schema_tool  # structured output: this tool's input is the reply's text
        self.tools: dict[int, dict[str, Any]] = {}
        self.text: list[str] = []  # text blocks, for the usage estimate (and the reply, under a schema: see below)
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.reason: str | None = None
        self.done = False

    def feed(self, data: bytes, request: Any) -> list[str]:
        """One event's data; returns the text it adds. message_stop ends the reply; an error event raises."""
        if self.done:
            return []
        try:
            event = json.loads(data)
            kind = event["type"]
            if kind == "content_block_delta":  # by far the most frequent
                return self._delta(event["index"], event["delta"])
            if kind == "content_block_start":
                return self._start(event["index"], event["content_block"])
            if kind == "message_start":
                usage = event["message"].get("usage") or {}
                self.input_tokens = _count(usage.get("input_tokens"))
            elif kind == "message_delta":
                self.reason = (event.get("delta") or {}).get("stop_reason") or self.reason
                usage = event.get("usage") or {}
                self.output_tokens = _count(usage.get("output_tokens"))
                self.input_tokens = _count(usage.get("input_tokens")) or self.input_tokens  # newer servers repeat it
            elif kind == "message_stop":
                self.done = True
            elif kind == "error":  # as the SDK: a server reporting a failure mid-stream
                import anthropic

                error = event.get("error")
                message = error.get("message") if isinstance(error, dict) else None
                raise anthropic.APIError(message if isinstance(message, str) and message
                                         else "An error occurred during streaming", request=request, body=event)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:  # not JSON, or not an event's shape
            raise ProviderUnavailable("Anthropic sent a malformed stream event") from exc
        return []

    def _start(self, index: int, block: dict[str, Any]) -> list[str]:
        """A content block begins: text may come with it; a tool use is remembered for its JSON to follow."""
        if block["type"] == "tool_use":
            # Proxies may send the whole input here rather than in pieces; the pieces win when there are any.
            given = block.get("input")
            self.tools[index] = {"id": block.get("id") or f"toolu_{index}", "name": block.get("name") or "",
                                 "json": [], "given": json.dumps(given) if given else ""}
        elif block["type"] == "text" and (text := block.get("text")):
            return self._text(text)
        return []  # thinking and server-tool blocks are not part of the reply

    def _delta(self, index: int, delta: dict[str, Any]) -> list[str]:
        """A piece of a text block or of a tool's input JSON."""
        kind = delta["type"]
        if kind == "text_delta":
            return self._text(delta["text"])
        tool = self.tools.get(index)
        if kind == "input_json_delta" and tool is not None and (piece := delta["partial_json"]):
            tool["json"].append(piece)
            if tool["name"] == self.schema_tool:
                return [piece]  # structured output: the schema tool's input JSON is the reply's text, live
        return []

    def _text(self, text: str) -> list[str]:
        """Text is the reply, except under a schema, where it is held back: the schema tool's JSON is the reply."""
        self.text.append(text)
        return [] if self.schema_tool else [text]

    def unsent_text(self) -> str:
        """Under a schema, text owed at the end: JSON given whole, or text held back (a server ignored the tool)."""
        if self.schema_tool is None:
            return ""
        schema_calls = [t for t in self.tools.values() if t["name"] == self.schema_tool]
        if not schema_calls:
            return "".join(self.text)
        return "" if schema_calls[0]["json"] else schema_calls[0]["given"]

    def tool_calls(self) -> list[ToolCall]:
        """The tools the model asked for, in order; unparsable JSON is kept for the tool layer to refuse."""
        return [ToolCall(id=t["id"], name=t["name"], args=parse_args("".join(t["json"]) or t["given"]))
                for _, t in sorted(self.tools.items()) if t["name"] != self.schema_tool]

    def stop_reason(self) -> str | None:
        """Why the reply ended, as ours: a stream that ended without message_stop was interrupted."""
        if not self.done:
            return "interrupted"
        if self.reason == "tool_use" and self.schema_tool is not None:
            return "end"  # the forced schema tool is the answer, not a request to run a tool
        return STOP_REASONS.get(self.reason or "")

    def all_output(self) -> str:
        """Everything the model produced, for an estimate of its tokens."""
        return "".join(self.text) + "".join("".join(t["json"]) or t["given"] for t in self.tools.values())


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


def _request_text(request: ChatRequest) -> str:
    """All a request sends the model, for an estimate of its tokens."""
    parts = [request.system or ""]
    for m in request.messages:
        parts.append(m.content)
        parts += [json.dumps(c.args) for c in m.tool_calls]
    parts += [json.dumps(t.parameters) for t in request.tools]
    if request.response_schema is not None:
        parts.append(json.dumps(request.response_schema))
    return "".join(parts)


def _count(value: object) -> int | None:
    """A token count from the wire, if it is one."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def default_max_tokens(model: str) -> int:
    """The longest reply the model allows, when the caller set no limit (Claude 3 models stop at 4,096)."""
    older = model.startswith(("claude-3-haiku", "claude-3-sonnet", "claude-3-opus"))
    return OLDER_MAX_TOKENS if older else DEFAULT_MAX_TOKENS
