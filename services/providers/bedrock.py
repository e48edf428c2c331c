"""AWS Bedrock through boto3's Converse stream, in a worker thread."""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from services.errors import (
    ProviderAuth,
    ProviderBadRequest,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from services.events import Event, TextDelta, ToolCall, Usage
from services.providers.base import ChatMessage, ChatRequest, Provider, alternate_turns, parse_args
from services.providers.threaded import stream_from_thread


class BedrockProvider(Provider):
    """boto3 is blocking: the stream is read in a thread and handed over a queue."""

    name = "bedrock"
    supports_tools = True

    def __init__(self, *, region: str | None, models: list[str]) -> None:
        self._region = region
        self._models = models
        self._client: Any = None

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
        has_creds = (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")
                     or os.environ.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
                     or (Path.home() / ".aws" / "credentials").exists())
        return None if has_creds else "no AWS credentials found (AWS_ACCESS_KEY_ID or a profile)"

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        """Read ConverseStream in a thread; cancelling stops reading and closes the stream."""
        if (reason := self.unavailable_reason()) is not None:
            raise ProviderAuth(reason)
        try:
            async for event in stream_from_thread(lambda put, cancel: self._converse(request, cancel, put)):
                yield event
        except ProviderError:
            raise
        except Exception as exc:
            raise _translate(exc) from exc

    def _converse(self, request: ChatRequest, cancel: threading.Event, put: Any) -> None:
        """Blocking ConverseStream read (worker thread)."""
        import boto3

        if self._client is None:
            self._client = boto3.client("bedrock-runtime", region_name=self._region)
        kwargs: dict[str, Any] = {
            "modelId": request.model,
            "messages": bedrock_messages(request.messages),
            "inferenceConfig": {k: v for k, v in (("maxTokens", request.max_tokens),
                                                  ("temperature", request.temperature)) if v is not None},
        }
        if request.system:
            kwargs["system"] = [{"text": request.system}]
        if request.tools:
            kwargs["toolConfig"] = {"tools": [{"toolSpec": {
                "name": t.name, "description": t.description, "inputSchema": {"json": t.parameters}}}
                for t in request.tools]}
        response = self._client.converse_stream(**kwargs)
        stream = response["stream"]
        tool: dict[str, str] | None = None  # the tool use being streamed, its input in fragments
        try:
            for event in stream:
                if cancel.is_set():
                    break
                if "contentBlockStart" in event:
                    start = event["contentBlockStart"].get("start", {}).get("toolUse")
                    if start:
                        tool = {"id": start["toolUseId"], "name": start["name"], "input": ""}
                elif "contentBlockDelta" in event:
                    delta = event["contentBlockDelta"]["delta"]
                    if delta.get("text"):
                        put(TextDelta(delta=delta["text"]))
                    elif tool is not None and "toolUse" in delta:
                        tool["input"] += delta["toolUse"].get("input", "")
                elif "contentBlockStop" in event and tool is not None:
                    put(ToolCall(id=tool["id"], name=tool["name"], args=parse_args(tool["input"])))
                    tool = None
                elif "metadata" in event:
                    usage = event["metadata"].get("usage", {})
                    put(Usage(input_tokens=usage.get("inputTokens", 0),
                              output_tokens=usage.get("outputTokens", 0),
                              provider=self.name, model=request.model))
        finally:
            stream.close()


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


def _translate(exc: BaseException) -> ProviderError:
    """botocore errors as ours."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "") if hasattr(exc, "response") else ""
    if code in ("AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException"):
        return ProviderAuth("Bedrock rejected the AWS credentials: check them and model access")
    if code == "ThrottlingException":
        return ProviderRateLimited("Bedrock is throttling requests; try again shortly")
    if code in ("ValidationException", "ResourceNotFoundException"):
        return ProviderBadRequest(f"Bedrock refused the request ({code})")
    if type(exc).__name__ == "NoCredentialsError":
        return ProviderAuth("no AWS credentials found")
    return ProviderUnavailable(f"Bedrock call failed: {type(exc).__name__}")
