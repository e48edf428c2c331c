"""Bedrock through the real boto3 against a wire-level fake: framing, usage, stop reasons, tools, errors, stop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from app.settings import Settings
from services.core.errors import (
    ProviderAuth,
    ProviderBadRequest,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from services.core.events import TextDelta, ToolCall, Usage
from services.providers.base import ChatMessage, ChatRequest, ToolSpec
from services.providers.bedrock import BedrockProvider
from services.providers.registry import Registry
from tests.fakes.bedrock_server import (
    FakeBedrock,
    Turn,
    encode_frame,
    event_frame,
    exception_frame,
    model_summary,
)

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
REQUEST = ChatRequest(model=MODEL, messages=[ChatMessage(role="user", content="Hi")], system="Be brief.",
                      max_tokens=64, temperature=0.2)
SQL_TOOL = ToolSpec(name="sql_query", description="Run SQL", parameters={
    "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]})
SECRET = "fake-secret-access-key-for-the-bedrock-wire-tests"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials, and nothing from this machine's AWS config or instance metadata."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL",
                "AWS_ENDPOINT_URL_BEDROCK", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_MAX_ATTEMPTS",
                "AWS_RETRY_MODE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKEFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_REGION", "us-east-1")


def serve(monkeypatch: pytest.MonkeyPatch, *turns: Turn, **options: Any) -> FakeBedrock:
    """A started fake that boto3 will call (AWS_ENDPOINT_URL is botocore's own endpoint override)."""
    fake = FakeBedrock(turns=list(turns) or [Turn()], **options)
    monkeypatch.setenv("AWS_ENDPOINT_URL", fake.endpoint_url)
    return fake


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBedrock]:
    """A fake answering the default turn; tests replace `fake.turns` before calling."""
    with serve(monkeypatch) as server:
        yield server


def provider() -> BedrockProvider:
    return BedrockProvider(region="us-east-1", models=[MODEL])


def from_settings(monkeypatch: pytest.MonkeyPatch, timeout_s: float) -> Any:
    """Bedrock as the app builds it, with LANTERN_PROVIDER_TIMEOUT set."""
    monkeypatch.setenv("LANTERN_PROVIDER_TIMEOUT", str(timeout_s))
    return Registry.from_settings(Settings()).providers["bedrock"]


async def collect(p: Any, request: ChatRequest = REQUEST) -> list[Any]:
    return [e async for e in p.stream(request)]


def text_of(events: list[Any]) -> str:
    return "".join(e.delta for e in events if isinstance(e, TextDelta))


def usage_of(events: list[Any]) -> Usage:
    usages = [e for e in events if isinstance(e, Usage)]
    assert len(usages) == 1, events
    return usages[0]


# --- the framing -----------------------------------------------------------------------------------------

def test_the_fake_frames_parse_with_botocores_own_event_stream_parser() -> None:
    frames = [event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "héllo"}}),
              exception_frame("throttlingException", "slow down"),
              encode_frame({":event-type": "metadata"}, b"")]
    buffer = EventStreamBuffer()
    for byte in b"".join(frames):  # one byte at a time: lengths, not read sizes, delimit messages
        buffer.add_data(bytes([byte]))
    messages = list(buffer)
    assert [m.headers.get(":event-type") or m.headers[":exception-type"] for m in messages] == [
        "contentBlockDelta", "throttlingException", "metadata"]
    assert json.loads(messages[0].payload)["delta"] == {"text": "héllo"}
    assert messages[1].to_response_dict()["status_code"] == 400
    assert messages[2].payload == b""

    corrupt = bytearray(frames[0])
    corrupt[-6] ^= 0xFF  # a payload byte: botocore must notice through the message CRC
    buffer = EventStreamBuffer()
    buffer.add_data(bytes(corrupt))
    with pytest.raises(ChecksumMismatch):
        list(buffer)


# --- text, usage and why the reply stopped ---------------------------------------------------------------

async def test_text_streams_with_usage_and_a_signed_request(fake: FakeBedrock) -> None:
    events = await collect(provider())
    assert text_of(events) == "Hello from fake Bedrock."
    assert sum(isinstance(e, TextDelta) for e in events) > 1  # streamed, not in one piece
    usage = usage_of(events)
    assert (usage.input_tokens, usage.output_tokens, usage.provider, usage.model) == (11, 7, "bedrock", MODEL)
    assert usage.stop_reason == "end" and not usage.estimated
    sent = fake.requests[0]
    assert sent["model"] == MODEL
    assert sent["body"]["system"] == [{"text": "Be brief."}]
    assert sent["body"]["inferenceConfig"] == {"maxTokens": 64, "temperature": 0.2}
    assert sent["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIAFAKEFAKEFAKEFAKE/")
    assert SECRET not in json.dumps(sent)


@pytest.mark.parametrize(("wire", "ours"), [
    ("end_turn", "end"), ("stop_sequence", "end"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("guardrail_intervened", "content_filter"), ("content_filtered", "content_filter")])
async def test_stop_reasons(fake: FakeBedrock, wire: str, ours: str) -> None:
    fake.turns = [Turn(stop_reason=wire)]
    assert usage_of(await collect(provider())).stop_reason == ours


async def test_a_stream_that_ends_without_message_stop_is_interrupted(fake: FakeBedrock) -> None:
    fake.turns = [Turn(text="The lighthouse keeper climbed", stop_reason=None, usage=None)]
    events = await collect(provider())
    assert text_of(events) == "The lighthouse keeper climbed"
    usage = usage_of(events)
    assert usage.stop_reason == "interrupted"
    assert usage.estimated and usage.output_tokens > 0 and usage.input_tokens > 0


async def test_missing_usage_is_estimated_and_marked(fake: FakeBedrock) -> None:
    fake.turns = [Turn(text="word " * 40, usage=None)]
    usage = usage_of(await collect(provider()))
    assert usage.estimated and usage.stop_reason == "end"
    assert 30 <= usage.output_tokens <= 80


# --- tools -----------------------------------------------------------------------------------------------

async def test_tool_arguments_split_over_deltas_become_one_call(fake: FakeBedrock) -> None:
    fake.turns = [Turn(text="Let me look.", tools=[("sql_query", json.dumps({"query": "SELECT 1 AS one"}))],
                       stop_reason="tool_use")]
    request = ChatRequest(model=MODEL, messages=[ChatMessage(role="user", content="How many?")], tools=(SQL_TOOL,))
    events = await collect(provider(), request)
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert [(c.id, c.name, c.args) for c in calls] == [("tooluse_1", "sql_query", {"query": "SELECT 1 AS one"})]
    assert text_of(events) == "Let me look."
    assert usage_of(events).stop_reason == "tool_calls"
    offered = fake.requests[0]["body"]["toolConfig"]["tools"]
    assert offered[0]["toolSpec"]["inputSchema"]["json"] == SQL_TOOL.parameters


async def test_bad_tool_json_is_a_recoverable_call_not_an_internal_error(fake: FakeBedrock) -> None:
    fake.turns = [Turn(text="", tools=[("sql_query", '{"query": "SELECT 1')], stop_reason="tool_use")]
    request = ChatRequest(model=MODEL, messages=[ChatMessage(role="user", content="Go")], tools=(SQL_TOOL,))
    calls = [e for e in await collect(provider(), request) if isinstance(e, ToolCall)]
    assert calls[0].name == "sql_query" and calls[0].args == {"_raw": '{"query": "SELECT 1'}


# --- errors ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "code", "message", "error", "says"), [
    (403, "AccessDeniedException", "You don't have access to the model with the specified model ID.",
     ProviderAuth, ["don't have access", "AWS_ACCESS_KEY_ID"]),
    (403, "UnrecognizedClientException", "The security token included in the request is invalid.",
     ProviderAuth, ["security token"]),
    (400, "ExpiredTokenException", "The security token included in the request is expired",
     ProviderAuth, ["expired"]),
    (429, "ThrottlingException", "Too many requests, please wait before trying again.",
     ProviderRateLimited, ["Too many requests"]),
    (400, "ServiceQuotaExceededException", "Your request exceeds the service quota for your account.",
     ProviderRateLimited, ["service quota"]),
    (400, "ValidationException", "The provided model identifier is invalid.",
     ProviderBadRequest, ["The provided model identifier is invalid."]),
    (404, "ResourceNotFoundException", "Could not resolve the foundation model from the provided identifier.",
     ProviderBadRequest, [MODEL, "Could not resolve the foundation model"]),
    (429, "ModelNotReadyException", "Model is not ready.", ProviderUnavailable, ["not ready"]),
    (503, "ServiceUnavailableException", "Bedrock is unavailable.", ProviderUnavailable, ["unavailable"]),
    (500, "InternalServerException", "Internal failure.", ProviderUnavailable, ["Internal failure"]),
    (408, "ModelTimeoutException", "Model took too long.", ProviderUnavailable, ["too long"]),
    (418, "TeapotRefusalException", "The model is a teapot today.",
     ProviderBadRequest, ["TeapotRefusalException", "The model is a teapot today."]),
])
async def test_errors_keep_the_servers_explanation_and_boto_tries_once(
        monkeypatch: pytest.MonkeyPatch, status: int, code: str, message: str,
        error: type[ProviderError], says: list[str]) -> None:
    with serve(monkeypatch, Turn(status=status, error_code=code, message=message)) as fake:
        with pytest.raises(error) as info:
            await collect(provider())
        assert len(fake.requests) == 1  # boto does not retry: Lantern's fallback chain does
    shown = str(info.value)
    for fragment in says:
        assert fragment in shown
    assert "ClientError" not in shown and SECRET not in shown
    assert isinstance(info.value.__cause__, Exception)  # raised from the SDK's error


@pytest.mark.parametrize(("exception", "error"), [
    ("modelStreamErrorException", ProviderUnavailable), ("throttlingException", ProviderRateLimited),
    ("validationException", ProviderBadRequest), ("internalServerException", ProviderUnavailable),
    ("serviceUnavailableException", ProviderUnavailable)])
async def test_an_exception_inside_the_stream_is_ours_after_the_text_that_came(
        fake: FakeBedrock, exception: str, error: type[ProviderError]) -> None:
    fake.turns = [Turn(text="Partial answer", exception=(exception, f"{exception} from the model"))]
    seen: list[Any] = []
    with pytest.raises(error, match=f"{exception} from the model"):
        async for event in provider().stream(REQUEST):
            seen.append(event)
    assert text_of(seen) == "Partial answer"


async def test_a_connection_cut_mid_reply_is_unavailable_after_the_text_that_came(fake: FakeBedrock) -> None:
    fake.turns = [Turn(text="one two three", drop_after_first=True)]
    seen: list[Any] = []
    with pytest.raises(ProviderUnavailable, match="broke off"):
        async for event in provider().stream(REQUEST):
            seen.append(event)
    assert text_of(seen) == "one t"


async def test_an_unreachable_endpoint_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeBedrock() as fake:
        endpoint = fake.endpoint_url
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # nobody listens there now
    with pytest.raises(ProviderUnavailable, match="reach Bedrock"):
        await collect(provider())


async def test_missing_credentials_say_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ProviderAuth, match="AWS_ACCESS_KEY_ID"):
        await collect(provider())


async def test_a_profile_that_does_not_exist_is_an_auth_error(fake: FakeBedrock,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_PROFILE", "nosuchprofile")
    with pytest.raises(ProviderAuth, match="nosuchprofile"):
        await collect(provider())
    assert fake.requests == []


# --- timeouts: LANTERN_PROVIDER_TIMEOUT, one attempt -----------------------------------------------------

async def test_a_stalled_server_times_out_at_the_lantern_timeout_with_one_attempt(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(monkeypatch, Turn(stall_before=4)) as fake:
        bedrock = from_settings(monkeypatch, timeout_s=0.5)
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable, match="LANTERN_PROVIDER_TIMEOUT"):
            await collect(bedrock)
        assert time.monotonic() - started < 3  # 0.5 s and one try; the old provider took 4.1 s (retries)
        assert len(fake.requests) == 1


async def test_a_stream_that_stalls_mid_reply_times_out_too(monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(monkeypatch, Turn(text="one two three", stall_after_first=4)) as fake:
        bedrock = from_settings(monkeypatch, timeout_s=0.5)
        seen: list[Any] = []
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable, match="LANTERN_PROVIDER_TIMEOUT"):
            async for event in bedrock.stream(REQUEST):
                seen.append(event)
        assert time.monotonic() - started < 3  # 0.5 s and one try; the old provider took 4.1 s (retries)
        assert text_of(seen) == "one t" and len(fake.requests) == 1


# --- structured output -----------------------------------------------------------------------------------

VERDICT = {"type": "object", "properties": {"verdict": {"type": "string", "maxLength": 40}},
           "required": ["verdict"]}
SCHEMA_REQUEST = ChatRequest(model=MODEL, messages=[ChatMessage(role="user", content="Judge")],
                             response_schema=VERDICT, schema_name="verdict", tools=(SQL_TOOL,))


async def test_a_schema_forces_one_tool_and_its_input_is_the_reply_text(fake: FakeBedrock) -> None:
    answer = json.dumps({"verdict": "sound"})
    fake.turns = [Turn(text="", tools=[("verdict", answer)], stop_reason="tool_use")]
    events = await collect(provider(), SCHEMA_REQUEST)
    assert json.loads(text_of(events)) == {"verdict": "sound"}
    assert sum(isinstance(e, TextDelta) for e in events) == 3  # streamed as it came
    assert not [e for e in events if isinstance(e, ToolCall)]
    assert usage_of(events).stop_reason == "end"
    config = fake.requests[0]["body"]["toolConfig"]
    assert config["toolChoice"] == {"tool": {"name": "verdict"}}
    assert [t["toolSpec"]["name"] for t in config["tools"]] == ["verdict"]
    assert config["tools"][0]["toolSpec"]["inputSchema"] == {"json": VERDICT}


async def test_a_model_without_tool_choice_gets_the_schema_tool_unforced(fake: FakeBedrock) -> None:
    answer = json.dumps({"verdict": "weak"})
    fake.turns = [Turn(reject_tool_choice=True, text="", tools=[("verdict", answer)], stop_reason="tool_use")]
    events = await collect(provider(), SCHEMA_REQUEST)
    assert json.loads(text_of(events)) == {"verdict": "weak"}
    assert [("toolChoice" in r["body"]["toolConfig"]) for r in fake.requests] == [True, False]


# --- listing ---------------------------------------------------------------------------------------------

async def test_listing_asks_the_control_plane_for_streaming_text_models(fake: FakeBedrock) -> None:
    fake.models = [model_summary("amazon.nova-lite-v1:0"), model_summary("meta.llama3-8b-instruct-v1:0"),
                   model_summary("amazon.titan-image-generator-v2:0", output="IMAGE"),
                   model_summary("anthropic.claude-3-7-sonnet-20250219-v1:0", inference="INFERENCE_PROFILE"),
                   model_summary("cohere.command-r-v1:0", streaming=False)]
    listed = await provider().list_models()
    assert listed == [MODEL, "amazon.nova-lite-v1:0", "meta.llama3-8b-instruct-v1:0"]
    assert fake.listings == [{"byOutputModality": "TEXT", "byInferenceType": "ON_DEMAND"}]


async def test_a_failed_listing_raises_so_the_registry_falls_back(fake: FakeBedrock) -> None:
    fake.listing_error = (403, "AccessDeniedException", "not authorized to perform bedrock:ListFoundationModels")
    with pytest.raises(ProviderAuth, match="ListFoundationModels"):
        await provider().list_models()


# --- stop ------------------------------------------------------------------------------------------------

async def test_stop_closes_the_upstream_stream_at_once_and_frees_the_worker(fake: FakeBedrock) -> None:
    fake.turns = [Turn(text="one two three four", stall_after_first=30)]
    loop = asyncio.get_running_loop()
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=1))  # the worker, alone
    first = asyncio.Event()
    seen: list[Any] = []

    async def consume() -> None:
        async for event in provider().stream(REQUEST):
            seen.append(event)
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 10)
    stopped = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    while fake.closed_at is None and time.monotonic() - stopped < 2:
        await asyncio.sleep(0.01)
    assert fake.closed_at is not None and fake.closed_at - stopped < 0.5, "the upstream stream stayed open"
    assert fake.open_streams == 0
    # The only worker thread is free again: it was not left blocked on the stalled read.
    assert await asyncio.wait_for(loop.run_in_executor(None, lambda: "free"), 0.5) == "free"
    assert text_of(seen) == "one t"


async def test_stop_before_the_reply_starts_closes_the_stream_as_soon_as_it_arrives(fake: FakeBedrock) -> None:
    fake.turns = [Turn(text="too late", stall_before=1)]
    task = asyncio.create_task(collect(provider()))
    while not fake.requests:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stopped = time.monotonic()
    while fake.closed_at is None and time.monotonic() - stopped < 3:
        await asyncio.sleep(0.01)
    # boto exposes no socket before the response: the worker waits for it (or the timeout), then closes it.
    assert fake.closed_at is not None and fake.closed_at - stopped < 1.5
    assert fake.open_streams == 0
