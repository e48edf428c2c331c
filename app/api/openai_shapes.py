"""OpenAI's wire shapes for `/v1`: the chat request in, completions, chunks and errors out.

Only what Lantern can honour is read; other fields OpenAI defines (`user`, `logprobs`...) are ignored,
as OpenAI-compatible servers commonly do, so existing clients work unchanged.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.chat.gateway import GatewayRequest
from services.core.errors import LanternError, RateLimited
from services.core.events import Done, Error, Event, TextDelta, ToolCall, Usage
from services.core.usage import UsageTally
from services.providers.base import ChatMessage, ToolSpec, parse_args

# Our error kinds (services/core/errors.py, plus the run's "token_cap" and "internal") as OpenAI's
# (status, type, code). OpenAI itself answers 429 with type "requests"; an upstream's missing key is
# Lantern's configuration problem, so 503 rather than the client's 401.
ERRORS: dict[str, tuple[int, str, str | None]] = {
    "unknown_model": (404, "invalid_request_error", "model_not_found"),
    "not_found": (404, "invalid_request_error", None),
    "bad_input": (400, "invalid_request_error", None),
    "bad_request": (400, "invalid_request_error", "upstream_bad_request"),
    "token_cap": (400, "invalid_request_error", "run_token_cap_exceeded"),
    "unauthenticated": (401, "invalid_request_error", "invalid_api_key"),
    "forbidden": (403, "invalid_request_error", "forbidden"),
    "rate_limited": (429, "requests", "rate_limit_exceeded"),
    "auth": (503, "server_error", "upstream_not_configured"),
    "unavailable": (502, "server_error", "upstream_unavailable"),
    "provider_error": (502, "server_error", "upstream_error"),
}
INTERNAL = (500, "server_error", None)
# Lantern's stop reasons (services/core/events.py STOP_REASONS) as OpenAI's finish_reason. "interrupted" (the
# upstream ended early) becomes "length": the finish reason clients already read as "incomplete".
FINISH = {"end": "stop", "length": "length", "tool_calls": "tool_calls", "content_filter": "content_filter",
          "interrupted": "length"}
PERMISSIVE_OBJECT: dict[str, Any] = {"type": "object"}  # json_object: any JSON object


class _Loose(BaseModel):
    """Unknown fields are ignored, as OpenAI-compatible servers do."""

    model_config = ConfigDict(extra="ignore")


class FunctionDef(_Loose):
    """A client's function tool."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ToolDef(_Loose):
    """An entry of `tools`."""

    type: Literal["function"]
    function: FunctionDef


class CalledFunction(_Loose):
    """The function an assistant message called, arguments as JSON text."""

    name: str
    arguments: str = "{}"


class ToolCallIn(_Loose):
    """A tool call of an earlier assistant message."""

    id: str = Field(min_length=1)
    type: Literal["function"] = "function"
    function: CalledFunction


class MessageIn(_Loose):
    """One message of `messages`; content is text or a list of text parts."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None


class JsonSchemaFormat(_Loose):
    """`response_format.json_schema`."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str = Field("response", min_length=1, max_length=64)
    schema_: dict[str, Any] = Field(default_factory=lambda: dict(PERMISSIVE_OBJECT), alias="schema")


class ResponseFormat(_Loose):
    """`response_format`: text, any JSON object, or JSON matching a schema."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(_Loose):
    """`stream_options`."""

    include_usage: bool = False


class ChatCompletionBody(_Loose):
    """`POST /v1/chat/completions`."""

    model: str = Field(min_length=1)
    messages: list[MessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    n: int | None = Field(None, ge=1, le=1)
    tools: list[ToolDef] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    top_p: float | None = Field(None, ge=0, le=1)
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)

    @property
    def include_usage(self) -> bool:
        """Whether a streamed reply ends with a usage chunk."""
        return bool(self.stream_options and self.stream_options.include_usage)


class OpenAIError(Exception):
    """A refusal in OpenAI's shape, raised where a LanternError does not fit (a body that does not parse)."""

    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.param, self.code = status, type_, param, code


def parse_body(raw: bytes) -> ChatCompletionBody:
    """The request body, or an OpenAIError naming the first wrong field."""
    try:
        return ChatCompletionBody.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise OpenAIError(400, "We could not parse the JSON body of your request: send valid JSON.") from None
        param = _param(first["loc"])
        raise OpenAIError(400, f"Invalid value for '{param}': {first['msg']}", param=param) from None


def to_gateway(body: ChatCompletionBody) -> GatewayRequest:
    """The body in Lantern's terms: system prompts joined, tool calls and results as ChatMessages."""
    system: list[str] = []
    messages: list[ChatMessage] = []
    names: dict[str, str] = {}  # tool call id → function name, for the results
    for i, m in enumerate(body.messages):
        text = _text(m.content, f"messages[{i}].content")
        if m.role in ("system", "developer"):
            system.append(text)
            continue
        calls = tuple(ToolCall(id=c.id, name=c.function.name, args=parse_args(c.function.arguments))
                      for c in m.tool_calls or ()) if m.role == "assistant" else ()
        names.update({c.id: c.name for c in calls})
        if m.role == "tool" and (m.tool_call_id or "") not in names:
            raise OpenAIError(400, f"messages[{i}] has role 'tool' but answers no tool call of an earlier assistant "
                              f"message (tool_call_id {m.tool_call_id!r})", param=f"messages[{i}].tool_call_id")
        messages.append(ChatMessage(role=m.role, content=text, tool_calls=calls, tool_call_id=m.tool_call_id,
                                    name=names.get(m.tool_call_id or "") if m.role == "tool" else None))
    tools = tuple(ToolSpec(name=t.function.name, description=t.function.description,
                           parameters=t.function.parameters) for t in body.tools or ())
    if body.tool_choice == "none":  # the client asked for text only: the model is not offered its tools
        tools = ()
    schema, schema_name = _response_schema(body.response_format)
    return GatewayRequest(model=body.model.strip(), messages=messages, system="\n\n".join(system) or None,
                          temperature=body.temperature, max_tokens=body.max_completion_tokens or body.max_tokens,
                          tools=tools, response_schema=schema, schema_name=schema_name,
                          stop=(body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ()),
                          extra=_extra(body, bool(tools)))


class Reply:
    """A reply as its events arrive: text, tool calls, usage, why it ended, and any error."""

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.tool_calls: list[ToolCall] = []
        self.tally = UsageTally()
        self.stop_reason: str | None = None
        self.error: Error | None = None
        self.status: str | None = None

    def add(self, event: Event) -> None:
        """Fold one event in."""
        self.tally.add(event)
        match event:
            case TextDelta(delta=delta):
                self.pieces.append(delta)
            case ToolCall():
                self.tool_calls.append(event)
            case Usage(stop_reason=reason) if reason:
                self.stop_reason = reason
            case Error():
                self.error = event
            case Done(status=status):
                self.status = status
                self.tally.settle()  # stopped before the provider counted: Lantern's estimate

    @property
    def finish_reason(self) -> str:
        """OpenAI's finish_reason."""
        if self.stop_reason in ("length", "content_filter", "interrupted"):
            return FINISH[self.stop_reason]
        return "tool_calls" if self.tool_calls else "stop"

    @property
    def usage(self) -> dict[str, int]:
        """OpenAI's usage object."""
        prompt, completion = self.tally.input_tokens, self.tally.output_tokens
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion(*, id_: str, created: int, model: str, reply: Reply) -> dict[str, Any]:
    """A whole `chat.completion`."""
    message: dict[str, Any] = {"role": "assistant", "content": "".join(reply.pieces) or None, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [tool_call(c) for c in reply.tool_calls]
    return {"id": id_, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}],
            "usage": reply.usage, "system_fingerprint": None}


def tool_call(call: ToolCall, index: int | None = None) -> dict[str, Any]:
    """A tool call as OpenAI writes it (with its index in a streamed delta)."""
    args = call.args["_raw"] if set(call.args) == {"_raw"} else json.dumps(call.args, ensure_ascii=False)
    out: dict[str, Any] = {} if index is None else {"index": index}
    return {**out, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": args}}


class ChunkWriter:
    """Turns a reply's event batches into `chat.completion.chunk` SSE lines, each text piece sent once."""

    def __init__(self, *, id_: str, model: str, include_usage: bool) -> None:
        self.id = id_
        self.model = model
        self.created = int(time.time())
        self.include_usage = include_usage
        self.reply = Reply()

    def opening(self) -> str:
        """The first chunk: the assistant's role."""
        return self._chunk({"role": "assistant", "content": ""})

    def feed(self, events: list[Event]) -> str:
        """The chunks for a batch: consecutive text joined into one delta, each tool call in its own."""
        out: list[str] = []
        text: list[str] = []
        for event in events:
            self.reply.add(event)
            if isinstance(event, TextDelta):
                text.append(event.delta)
            elif isinstance(event, ToolCall):
                if text:
                    out.append(self._chunk({"content": "".join(text)}))
                    text = []
                index = len(self.reply.tool_calls) - 1
                out.append(self._chunk({"tool_calls": [tool_call(event, index)]}))
        if text:
            out.append(self._chunk({"content": "".join(text)}))
        return "".join(out)

    def closing(self) -> str:
        """The last chunk with the finish reason, the usage chunk if asked for, and `[DONE]`; or the error."""
        if (error := self.reply.error) is not None:  # the SDKs raise an APIError on this line
            _status, type_, code = _shape(error.error_type)
            return sse_data(error_body(error.message, type_=type_, code=code))
        tail = self._chunk({}, finish_reason=self.reply.finish_reason)
        if self.include_usage:
            tail += sse_data({**self._base(), "choices": [], "usage": self.reply.usage})
        return tail + "data: [DONE]\n\n"

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> str:
        """One chunk of the only choice."""
        body = {**self._base(), "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                             "finish_reason": finish_reason}]}
        if self.include_usage:
            body["usage"] = None  # OpenAI: null on every chunk but the usage chunk
        return sse_data(body)

    def _base(self) -> dict[str, Any]:
        """The fields every chunk carries."""
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "system_fingerprint": None}


def sse_data(body: dict[str, Any]) -> str:
    """One `data:` line of an OpenAI stream."""
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def error_body(message: str, *, type_: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error object."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(status: int, message: str, *, type_: str = "invalid_request_error", param: str | None = None,
                   code: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error response in OpenAI's shape."""
    return JSONResponse(error_body(message, type_=type_, code=code, param=param), status_code=status, headers=headers)


def lantern_error(exc: LanternError, **headers: str) -> JSONResponse:
    """One of our errors in OpenAI's shape, with `Retry-After` when it carries one."""
    status, type_, code = _shape(exc.kind)
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(int(exc.retry_after))
    return error_response(status, str(exc), type_=type_, code=code, param=getattr(exc, "param", None),
                          headers=headers)


def run_error(error: Error) -> JSONResponse:
    """A failed run's error event as a response."""
    status, type_, code = _shape(error.error_type)
    return error_response(status, error.message, type_=type_, code=code)


def _shape(kind: str) -> tuple[int, str, str | None]:
    """(status, type, code) of an error kind."""
    return ERRORS.get(kind, INTERNAL)


def _text(content: str | list[dict[str, Any]] | None, param: str) -> str:
    """Message content as text: a string, or the text of its parts (images cannot be sent on)."""
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for part in content:
        if part.get("type") not in ("text", "refusal"):
            raise OpenAIError(400, f"{param}: only text content is supported, not {part.get('type')!r}",
                              param=param)
        texts.append(str(part.get("text") or part.get("refusal") or ""))
    return "".join(texts)


def _response_schema(fmt: ResponseFormat | None) -> tuple[dict[str, Any] | None, str]:
    """The JSON Schema the reply must match (structured output), and its name."""
    if fmt is None or fmt.type == "text":
        return None, "response"
    if fmt.type == "json_object":
        return dict(PERMISSIVE_OBJECT), "response"
    if fmt.json_schema is None:
        raise OpenAIError(400, "response_format.json_schema is required when type is 'json_schema'",
                          param="response_format.json_schema")
    return fmt.json_schema.schema_, fmt.json_schema.name


def _extra(body: ChatCompletionBody, tools: bool) -> dict[str, Any]:
    """Sampling fields and the tool choice, sent on as they are to OpenAI-compatible upstreams."""
    extra = {k: v for k in ("top_p", "seed", "presence_penalty", "frequency_penalty")
             if (v := getattr(body, k)) is not None}
    if tools and body.tool_choice not in (None, "auto"):
        extra["tool_choice"] = body.tool_choice
    if tools and body.parallel_tool_calls is not None:
        extra["parallel_tool_calls"] = body.parallel_tool_calls
    return extra


def _param(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as the client wrote the field: messages[0].role."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part.startswith(("function-", "literal[", "str", "list[", "dict[", "none")):
            out += f".{part}" if out else part
    return out or "body"
