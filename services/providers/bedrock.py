"""AWS Bedrock through boto3's ConverseStream, read in a worker thread.

botocore makes one attempt per call, bounded by LANTERN_PROVIDER_TIMEOUT: retrying is the fallback chain's
job. The endpoint is AWS's, or whatever AWS_ENDPOINT_URL(_BEDROCK_RUNTIME) says (botocore reads it itself;
the wire tests point it at a fake server).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any, cast

from services.core.errors import (
    ProviderAuth,
    ProviderBadRequest,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from services.core.events import Event, TextDelta, ToolCall, Usage
from services.core.pricing import cost_usd
from services.providers.base import (
    ChatMessage,
    ChatRequest,
    Provider,
    alternate_turns,
    estimate_tokens,
    parse_args,
)
from services.providers.threaded import Put, stream_from_thread

CREDENTIALS_HINT = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) to use Bedrock"

# Converse's stopReason as ours (services.events.STOP_REASONS).
_STOP_REASONS = {"end_turn": "end", "stop_sequence": "end", "max_tokens": "length",
                 "model_context_window_exceeded": "length", "tool_use": "tool_calls",
                 "guardrail_intervened": "content_filter", "content_filtered": "content_filter"}

# Error codes, lower-cased and without "Exception": HTTP errors say `ThrottlingException`, the same error
# inside the event stream says `throttlingException`.
_AUTH = {"accessdenied", "unrecognizedclient", "expiredtoken", "invalidsignature", "signaturedoesnotmatch",
         "incompletesignature", "missingauthenticationtoken", "invalidclienttokenid", "unauthorized"}
_RATE_LIMITED = {"throttling", "servicequotaexceeded", "toomanyrequests"}
_UNAVAILABLE = {"modelnotready", "serviceunavailable", "internalserver", "internalfailure", "modeltimeout",
                "modelstreamerror", "modelerror"}


class BedrockProvider(Provider):
    """boto3 is blocking: the stream is read in a thread and handed over a queue."""

    name = "bedrock"
    supports_tools = True

    def __init__(self, *, region: str | None, models: list[str], timeout_s: float = 60.0) -> None:
        self._region = region
        self._models = models
        self._timeout_s = timeout_s
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()  # clients are made in worker threads; boto3 sessions are not thread-safe

    def models(self) -> list[str]:
        """Configured model ids."""
        return list(self._models)

    def accepts(self, model: str) -> bool:
        """Any model id may be tried."""
        return bool(model.strip())

    def unavailable_reason(self) -> str | None:
        """A region and some credential source (checked without touching the network)."""
        if not self._region:
            return "set AWS_REGION (and AWS credentials) to use Bedrock"
        has_creds = any(os.environ.get(var) for var in (
            "AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"))
        has_creds = has_creds or (Path.home() / ".aws" / "credentials").exists()
        return None if has_creds else f"no AWS credentials found: {CREDENTIALS_HINT}"

    async def list_models(self) -> list[str]:
        """Configured ids, then the on-demand, streaming text models the control plane lists."""
        if (reason := self.unavailable_reason()) is not None:
            raise ProviderAuth(reason)
        try:
            listed = await asyncio.to_thread(self._foundation_models)
        except Exception as exc:
            raise self._translate(exc) from exc
        return list(dict.fromkeys([*self._models, *listed]))

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        """Read ConverseStream in a thread; stopping shuts the upstream connection at once."""
        if (reason := self.unavailable_reason()) is not None:
            raise ProviderAuth(reason)
        upstream = _Upstream()
        try:
            work = stream_from_thread(lambda put, cancel: self._converse(request, put, cancel, upstream))
            async with aclosing(cast(AsyncGenerator[Event, None], work)) as events:  # closed now, not at GC
                async for event in events:
                    yield event
        except ProviderError:
            raise
        except Exception as exc:
            raise self._translate(exc, request.model) from exc
        finally:
            # A worker blocked on a read would otherwise hold the connection until the read timeout.
            upstream.abort()

    def _converse(self, request: ChatRequest, put: Put, cancel: threading.Event, upstream: _Upstream) -> None:
        """Blocking ConverseStream read (worker thread)."""
        from botocore.exceptions import ClientError

        client = self._client("bedrock-runtime")
        kwargs = converse_kwargs(request)
        try:
            response = client.converse_stream(**kwargs)
        except ClientError as exc:
            if not _refuses_tool_choice(kwargs, exc):
                raise
            # Only some models take toolChoice: offer the schema tool unforced; its schema still shapes the input.
            del kwargs["toolConfig"]["toolChoice"]
            response = client.converse_stream(**kwargs)
        stream = response["stream"]
        if not upstream.attach(stream):
            return  # stopped while the request was on its way
        reply = _Reply(request, self.name)
        try:
            for event in stream:
                if cancel.is_set():
                    return
                for out in reply.feed(event):
                    put(out)
        except Exception:
            if cancel.is_set():
                return  # the read was cut by stop, not by the server
            raise
        finally:
            upstream.close()
        for out in reply.finish():
            put(out)

    def _foundation_models(self) -> list[str]:
        """The control plane's text models that can be streamed on demand (blocking: a worker thread)."""
        answer = self._client("bedrock").list_foundation_models(byOutputModality="TEXT", byInferenceType="ON_DEMAND")
        return [m["modelId"] for m in answer.get("modelSummaries", [])
                if "TEXT" in m.get("outputModalities", []) and "ON_DEMAND" in m.get("inferenceTypesSupported", [])
                and m.get("responseStreamingSupported")]

    def _client(self, service: str) -> Any:
        """One boto3 client per service: one attempt, Lantern's timeouts."""
        import boto3
        from botocore.config import Config

        with self._lock:
            if service not in self._clients:
                if self._session is None:
                    self._session = boto3.session.Session()
                config = Config(connect_timeout=self._timeout_s, read_timeout=self._timeout_s,
                                # total_max_attempts counts the first try; max_attempts would count retries only.
                                retries={"total_max_attempts": 1, "mode": "standard"})
                self._clients[service] = self._session.client(service, region_name=self._region, config=config)
            return self._clients[service]

    def _translate(self, exc: BaseException, model: str | None = None) -> ProviderError:
        """botocore's and urllib3's errors as ours, keeping the server's code and explanation."""
        import urllib3.exceptions
        from botocore import exceptions as boto

        if isinstance(exc, boto.ClientError):
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return _from_code(str(error.get("Code") or "Error"), _safe(str(error.get("Message") or "")),
                              status, model)
        if isinstance(exc, boto.NoCredentialsError | boto.PartialCredentialsError):
            return ProviderAuth(f"no usable AWS credentials ({exc}): {CREDENTIALS_HINT}")
        if isinstance(exc, boto.ProfileNotFound):
            return ProviderAuth(f"{exc}: {CREDENTIALS_HINT}")
        if isinstance(exc, boto.NoRegionError):
            return ProviderAuth("set AWS_REGION to use Bedrock")
        if isinstance(exc, boto.ReadTimeoutError | boto.ConnectTimeoutError | urllib3.exceptions.TimeoutError):
            return ProviderUnavailable(f"Bedrock did not answer within {self._timeout_s:g} s "
                                       "(LANTERN_PROVIDER_TIMEOUT)")
        if isinstance(exc, boto.EndpointConnectionError):
            return ProviderUnavailable(f"cannot reach Bedrock: {exc}")
        if isinstance(exc, boto.HTTPClientError | urllib3.exceptions.HTTPError):
            return ProviderUnavailable(f"Bedrock's connection broke off ({type(exc).__name__}); try again")
        if isinstance(exc, boto.ParamValidationError):
            return ProviderBadRequest(f"Bedrock request is invalid: {exc}")
        return ProviderUnavailable(f"Bedrock call failed: {type(exc).__name__}: {_safe(str(exc))}")


def converse_kwargs(request: ChatRequest) -> dict[str, Any]:
    """ConverseStream's arguments; a response schema becomes one forced tool whose input is the reply."""
    kwargs: dict[str, Any] = {"modelId": request.model, "messages": bedrock_messages(request.messages)}
    inference = {k: v for k, v in (("maxTokens", request.max_tokens), ("temperature", request.temperature))
                 if v is not None}
    if inference:
        kwargs["inferenceConfig"] = inference
    if request.system:
        kwargs["system"] = [{"text": request.system}]
    if request.response_schema is not None:
        # The forced tool is the only one offered: a model made to call it could call no other.
        spec = {"name": request.schema_name, "description": "Give your reply as this tool's input.",
                "inputSchema": {"json": request.response_schema}}
        kwargs["toolConfig"] = {"tools": [{"toolSpec": spec}], "toolChoice": {"tool": {"name": request.schema_name}}}
    elif request.tools:
        kwargs["toolConfig"] = {"tools": [{"toolSpec": {
            "name": t.name, "description": t.description, "inputSchema": {"json": t.parameters}}}
            for t in request.tools]}
    return kwargs


def bedrock_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Our messages in the Converse shape: `toolUse` blocks and user `toolResult`s."""
    turns: list[tuple[str, list[dict[str, Any]]]] = []
    for m in messages:
        if m.role == "tool":
            result: dict[str, Any] = {"toolUseId": m.tool_call_id, "content": [{"text": m.content}],
                                      "status": "error" if m.is_error else "success"}
            turns.append(("user", [{"toolResult": result}]))
        elif m.role in ("user", "assistant"):
            blocks: list[dict[str, Any]] = [{"text": m.content}] if m.content else []
            blocks += [{"toolUse": {"toolUseId": c.id, "name": c.name, "input": c.args}} for c in m.tool_calls]
            turns.append((m.role, blocks))
    return alternate_turns(turns)


class _Reply:
    """One ConverseStream reply as our events; a tool call is held until its input is complete."""

    def __init__(self, request: ChatRequest, provider: str) -> None:
        self._request = request
        self._provider = provider
        self._schema = request.schema_name if request.response_schema is not None else None
        self._tool: dict[str, str] | None = None
        self._held: list[str] = []  # prose beside the schema tool: not part of a JSON reply
        self._answered = False  # the schema tool's input has been streamed as the reply
        self._generated: list[str] = []  # for an estimate when no usage arrives
        self._stop: str | None = None
        self._usage: dict[str, Any] = {}

    def feed(self, event: dict[str, Any]) -> list[Event]:
        """Our events for one stream event."""
        if "contentBlockDelta" in event:
            return self._delta(event["contentBlockDelta"].get("delta", {}))
        if "contentBlockStart" in event:
            start = event["contentBlockStart"].get("start", {}).get("toolUse")
            if start:
                self._tool = {"id": start["toolUseId"], "name": start["name"], "input": ""}
        elif "contentBlockStop" in event:
            return self._tool_done()
        elif "messageStop" in event:
            self._stop = event["messageStop"].get("stopReason", "")
        elif "metadata" in event:
            self._usage = event["metadata"].get("usage") or {}
        return []

    def finish(self) -> list[Event]:
        """What the stream's end says: held text of a model that ignored the schema tool, then usage."""
        out: list[Event] = []
        if self._schema is not None and not self._answered and self._held:
            out.append(TextDelta(delta="".join(self._held)))  # perhaps JSON anyway: validation judges
        stop = "interrupted" if self._stop is None else _STOP_REASONS.get(self._stop)
        if stop == "tool_calls" and self._answered:
            stop = "end"  # the forced tool was the answer, not a request to run a tool
        counted = "inputTokens" in self._usage and "outputTokens" in self._usage
        tin = int(self._usage["inputTokens"]) if counted else _estimate_input(self._request)
        tout = int(self._usage["outputTokens"]) if counted else estimate_tokens("".join(self._generated))
        out.append(Usage(input_tokens=tin, output_tokens=tout, provider=self._provider, model=self._request.model,
                         cost_usd=cost_usd(self._provider, self._request.model, tin, tout), stop_reason=stop,
                         estimated=None if counted else True))
        return out

    def _delta(self, delta: dict[str, Any]) -> list[Event]:
        if "text" in delta:
            text = str(delta["text"])
            self._generated.append(text)
            if self._schema is not None:
                self._held.append(text)
                return []
            return [TextDelta(delta=text)] if text else []
        if "toolUse" in delta and self._tool is not None:
            piece = str(delta["toolUse"].get("input", ""))
            self._generated.append(piece)
            if self._tool["name"] == self._schema:
                self._answered = True
                return [TextDelta(delta=piece)] if piece else []
            self._tool["input"] += piece
        return []

    def _tool_done(self) -> list[Event]:
        tool, self._tool = self._tool, None
        if tool is None or tool["name"] == self._schema:
            return []
        return [ToolCall(id=tool["id"], name=tool["name"], args=parse_args(tool["input"]))]


class _Upstream:
    """The event stream being read, so that stop can cut it from the event loop's side."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stream: Any = None
        self._aborted = False

    def attach(self, stream: Any) -> bool:
        """Keep the stream; False (and the stream closed) when stop came first."""
        with self._lock:
            if not self._aborted:
                self._stream = stream
                return True
        stream.close()
        return False

    def close(self) -> None:
        """The worker is done with the stream (closed here, in the thread that reads it)."""
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    def abort(self) -> None:
        """Wake a worker blocked on a read: it sees EOF, ends, and its close() drops the connection.

        Closing the response from here could wait on the reader's buffer lock; shutting the socket cannot.
        """
        with self._lock:
            self._aborted = True
            stream, self._stream = self._stream, None
        raw: Any = getattr(stream, "_raw_stream", None)  # botocore's EventStream over a urllib3 response
        # Already closed, or an urllib3 before 2.3 (no shutdown): that worker ends at its read timeout.
        with contextlib.suppress(Exception):
            raw.shutdown()


def _from_code(code: str, message: str, status: int | None, model: str | None) -> ProviderError:
    """An AWS error code (HTTP or in-stream) as ours; codes we do not know go by HTTP status."""
    key = code.lower().removesuffix("exception")
    said = f"{code}: {message}" if message else code
    if key in _AUTH:
        return ProviderAuth(f"Bedrock refused the AWS credentials ({said}); check AWS_ACCESS_KEY_ID and "
                            "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and that the model is enabled in this region")
    if key in _RATE_LIMITED:
        return ProviderRateLimited(f"Bedrock is throttling requests ({said}); try again shortly")
    if key == "resourcenotfound":
        return ProviderBadRequest(f"Bedrock does not know model '{model}' in this region ({said})")
    if key == "validation":
        return ProviderBadRequest(f"Bedrock refused the request: {message or code}")
    if key in _UNAVAILABLE:
        return ProviderUnavailable(f"Bedrock failed on its side ({said})")
    if status in (401, 403):
        return ProviderAuth(f"Bedrock refused the AWS credentials ({said})")
    if status == 429:
        return ProviderRateLimited(f"Bedrock is throttling requests ({said})")
    if status is not None and status < 500:
        return ProviderBadRequest(f"Bedrock refused the request (HTTP {status}, {said})")
    return ProviderUnavailable(f"Bedrock failed ({said})")


def _refuses_tool_choice(kwargs: dict[str, Any], exc: Any) -> bool:
    """Whether a forced schema tool was refused because this model takes no toolChoice."""
    error = exc.response.get("Error", {})
    return ("toolChoice" in kwargs.get("toolConfig", {}) and error.get("Code") == "ValidationException"
            and "toolChoice" in str(error.get("Message", "")))


def _estimate_input(request: ChatRequest) -> int:
    """Input tokens estimated from what was sent, for servers that report none."""
    parts = [request.system or ""] + [m.content for m in request.messages]
    parts += [str(c.args) for m in request.messages for c in m.tool_calls]
    return estimate_tokens("\n".join(parts))


def _safe(message: str) -> str:
    """A server's message fit to show: access key ids masked, length bounded."""
    masked = re.sub(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b", r"\1…", message)
    return masked if len(masked) <= 500 else masked[:500] + "…"
