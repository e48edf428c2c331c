"""A fake Bedrock on 127.0.0.1: ConverseStream in AWS event-stream framing, and the model listing.

It is a real HTTP server (uvicorn in a thread), so real boto3 signs, sends, frames and parses as it would
against AWS: point it here with AWS_ENDPOINT_URL. Frames are encoded here (not with botocore's help) so
that botocore's parser checks our framing, CRCs included. It records what reached it and when a stream
was closed, so tests can prove that boto made one attempt and that stop closes the upstream connection.
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.loopback import LoopbackServer, free_port

EVENT_STREAM = "application/vnd.amazon.eventstream"
_STRING = 7  # event-stream header value type: UTF-8 string with a 2-byte length


@dataclass
class Turn:
    """What the fake answers to the next ConverseStream call."""

    text: str = "Hello from fake Bedrock."
    chunk: int = 5
    tools: list[tuple[str, str]] = field(default_factory=list)  # (name, raw input JSON, sent in 3 pieces)
    stop_reason: str | None = "end_turn"  # None: the stream ends without messageStop
    usage: dict[str, int] | None = field(default_factory=lambda: {"inputTokens": 11, "outputTokens": 7,
                                                                   "totalTokens": 18})
    status: int = 200  # an error status answers JSON with x-amzn-ErrorType instead of a stream
    error_code: str = "ValidationException"
    message: str = "scripted failure"
    exception: tuple[str, str] | None = None  # (event type, message): an exception frame after the text
    stall_before: float = 0.0  # seconds before any answer (headers included)
    stall_after_first: float = 0.0  # seconds after the first text delta
    drop_after_first: bool = False  # cut the connection after the first text delta (no final chunk)
    reject_tool_choice: bool = False  # answer as models without toolChoice support do


@dataclass
class FakeBedrock(LoopbackServer):
    """Start with `with FakeBedrock() as fake:`; set AWS_ENDPOINT_URL to `fake.endpoint_url`."""

    turns: list[Turn] = field(default_factory=lambda: [Turn()])
    models: list[dict[str, Any]] = field(default_factory=list)  # foundation model summaries for the listing
    listing_error: tuple[int, str, str] | None = None  # (status, code, message) for GET /foundation-models
    requests: list[dict[str, Any]] = field(default_factory=list)  # {"model", "body", "headers"}
    listings: list[dict[str, str]] = field(default_factory=list)  # query parameters of each listing
    open_streams: int = 0
    closed_at: float | None = None

    def __post_init__(self) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        app = Starlette(routes=[
            Route("/model/{model_id:path}/converse-stream", self._converse_stream, methods=["POST"]),
            Route("/foundation-models", self._foundation_models, methods=["GET"]),
        ])
        self._serve(app)

    async def _converse_stream(self, request: Request) -> Response:
        body = json.loads(await request.body())
        self.requests.append({"model": request.path_params["model_id"], "body": body,
                              "headers": dict(request.headers)})
        turn = self.turns[min(len(self.requests) - 1, len(self.turns) - 1)]
        if turn.stall_before:
            await asyncio.sleep(turn.stall_before)
        if turn.reject_tool_choice and "toolChoice" in body.get("toolConfig", {}):
            return _error(400, "ValidationException",
                          "This model doesn't support the toolChoice field. Remove toolChoice and try again.")
        if turn.status != 200:
            return _error(turn.status, turn.error_code, turn.message)
        return StreamingResponse(self._frames(turn), media_type=EVENT_STREAM,
                                 headers={"x-amzn-RequestId": "fake-request-id"})

    async def _frames(self, turn: Turn) -> AsyncIterator[bytes]:
        self.open_streams += 1
        try:
            yield event_frame("messageStart", {"role": "assistant"})
            for n, i in enumerate(range(0, len(turn.text), turn.chunk)):
                yield event_frame("contentBlockDelta", {"contentBlockIndex": 0,
                                                        "delta": {"text": turn.text[i:i + turn.chunk]}})
                if n == 0 and turn.stall_after_first:
                    await asyncio.sleep(turn.stall_after_first)
                if n == 0 and turn.drop_after_first:
                    raise ConnectionResetError("fake Bedrock drops the stream")  # uvicorn cuts the connection
            if turn.text:
                yield event_frame("contentBlockStop", {"contentBlockIndex": 0})
            if turn.exception is not None:
                yield exception_frame(*turn.exception)
                return
            for index, (name, raw) in enumerate(turn.tools, start=1):
                yield event_frame("contentBlockStart", {"contentBlockIndex": index, "start": {
                    "toolUse": {"toolUseId": f"tooluse_{index}", "name": name}}})
                third = max(1, len(raw) // 3)  # input arrives in fragments, as from the real service
                for piece in (raw[:third], raw[third:2 * third], raw[2 * third:]):
                    yield event_frame("contentBlockDelta", {"contentBlockIndex": index,
                                                            "delta": {"toolUse": {"input": piece}}})
                yield event_frame("contentBlockStop", {"contentBlockIndex": index})
            if turn.stop_reason is not None:
                yield event_frame("messageStop", {"stopReason": turn.stop_reason})
            if turn.usage is not None:
                yield event_frame("metadata", {"usage": turn.usage, "metrics": {"latencyMs": 12}})
        finally:
            self.open_streams -= 1
            self.closed_at = time.monotonic()

    async def _foundation_models(self, request: Request) -> Response:
        self.listings.append(dict(request.query_params))
        if self.listing_error is not None:
            return _error(*self.listing_error)
        wanted_output = request.query_params.get("byOutputModality")
        wanted_type = request.query_params.get("byInferenceType")
        summaries = [m for m in self.models
                     if (not wanted_output or wanted_output in m.get("outputModalities", []))
                     and (not wanted_type or wanted_type in m.get("inferenceTypesSupported", []))]
        return JSONResponse({"modelSummaries": summaries})


def model_summary(model_id: str, *, output: str = "TEXT", inference: str = "ON_DEMAND",
                  streaming: bool = True) -> dict[str, Any]:
    """One entry of ListFoundationModels, shaped as the service sends it."""
    provider = model_id.split(".")[0]
    return {"modelArn": f"arn:aws:bedrock:us-east-1::foundation-model/{model_id}", "modelId": model_id,
            "modelName": model_id, "providerName": provider, "inputModalities": ["TEXT"],
            "outputModalities": [output], "responseStreamingSupported": streaming,
            "customizationsSupported": [], "inferenceTypesSupported": [inference],
            "modelLifecycle": {"status": "ACTIVE"}}


def encode_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (total and headers length, prelude CRC32), headers, payload, CRC32."""
    encoded = b"".join(_header(name, value) for name, value in headers.items())
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    head = prelude + struct.pack(">I", zlib.crc32(prelude))
    body = head + encoded + payload
    return body + struct.pack(">I", zlib.crc32(body))


def event_frame(event_type: str, data: dict[str, Any]) -> bytes:
    """An event message; the service pads payloads with a `p` field, so this does too."""
    payload = json.dumps({**data, "p": "abcdefghijklmnopqrstuvwxyzABCDEF"[:len(event_type)]}).encode()
    return encode_frame({":event-type": event_type, ":content-type": "application/json",
                         ":message-type": "event"}, payload)


def exception_frame(exception_type: str, message: str) -> bytes:
    """An exception message, as the service sends one mid-stream (e.g. `modelStreamErrorException`)."""
    return encode_frame({":exception-type": exception_type, ":content-type": "application/json",
                         ":message-type": "exception"}, json.dumps({"message": message}).encode())


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return struct.pack(">B", len(raw_name)) + raw_name + struct.pack(">BH", _STRING, len(raw_value)) + raw_value


def _error(status: int, code: str, message: str) -> Response:
    """An AWS JSON error: the code in x-amzn-ErrorType (with the namespace suffix AWS adds), the message in the body."""
    return JSONResponse({"message": message}, status_code=status,
                        headers={"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/",
                                 "x-amzn-RequestId": "fake-request-id"})
