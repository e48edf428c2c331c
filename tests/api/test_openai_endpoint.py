"""Lantern as an OpenAI-compatible endpoint, with the official `openai` SDK as the client (issue 19).

Real app subprocesses: one on loopback (scripted models, a fake OpenAI-compatible upstream, a chain, a low
token cap) and one in shared mode (API tokens, a low rate limit), each started once for the module.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.conftest import SCRIPTS, AppProcess
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.openai_server import Reply as FakeReply
from tests.security.conftest import ADMIN_PASSWORD, MEMBER_PASSWORD, SharedApp, run_users_cli

WEATHER_TOOL: Any = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city now",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def weather_script() -> dict[str, Any]:
    """Asks for the client's tool, then answers with its result."""
    return {"replies": [{"text": "Let me check.",
                         "tool_calls": [{"id": "call_w1", "name": "get_weather", "args": {"city": "Paris"}}]},
                        "It is 18 °C in Paris."]}


OUR_SCRIPTS: dict[str, Any] = {
    **SCRIPTS,
    "oa_weather_sync": weather_script(),
    "oa_weather_async": weather_script(),
    "oa_json": {"replies": ['{"city": "Paris", "temperature_c": 18}']},
    "oa_down": {"replies": [{"error": {"type": "unavailable", "message": "upstream is down"}}]},
    "oa_stop": {"replies": ["one, two, three STOP four, five"], "chunk": 3},
    "oa_long": {"replies": ["word " * 400], "chunk": 50},  # ~500 tokens: over the cap of 300
}
TOKEN_CAP = 300


class Weather(BaseModel):
    """The structured reply the client asks for."""

    city: str
    temperature_c: int


@pytest.fixture(scope="module")
def fake_upstream() -> Iterator[FakeOpenAI]:
    """An OpenAI-compatible server for Lantern to forward to, recording what it was sent."""
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeOpenAI) -> Iterator[AppProcess]:
    """Lantern on loopback (no login), started once for the module."""
    compat = {"fake": {"base_url": fake_upstream.base_url, "models": ["fake-model"]},
              "notools": {"base_url": fake_upstream.base_url, "models": ["plain"], "supports_tools": False}}
    proc = AppProcess(tmp_path_factory.mktemp("openai") / "data", {
        "LANTERN_SCRIPTS": json.dumps(OUR_SCRIPTS), "LANTERN_OPENAI_COMPAT": json.dumps(compat),
        "LANTERN_CHAINS": json.dumps({"sturdy": ["scripted/oa_down", "scripted/hello"]}),
        "LANTERN_MAX_RUN_TOKENS": str(TOKEN_CAP), "LANTERN_DEFAULT_MODEL": "scripted/hello",
        "OPENAI_API_KEY": "", "DATABASE_URL": ""})
    proc.wait_ready()
    yield proc
    proc.stop()


@pytest.fixture
def client(app: AppProcess) -> Iterator[openai.OpenAI]:
    """The SDK's sync client; no retries, so each failure is seen as it happened."""
    with openai.OpenAI(base_url=f"{app.url}/v1", api_key="unused-on-loopback", max_retries=0) as sdk:
        yield sdk


@pytest.fixture
async def aclient(app: AppProcess) -> Any:
    """The SDK's async client."""
    async with openai.AsyncOpenAI(base_url=f"{app.url}/v1", api_key="unused-on-loopback", max_retries=0) as sdk:
        yield sdk


def test_models_lists_available_models_and_chains(client: openai.OpenAI, app: AppProcess) -> None:
    ids = [m.id for m in client.models.list()]
    assert {"scripted/hello", "scripted/echo", "fake/fake-model", "chain/sturdy"} <= set(ids)
    assert "openai/gpt-4o-mini" not in ids  # no key: a client could not use it
    assert client.models.retrieve("chain/sturdy").owned_by == "lantern"
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("scripted/nope")
    assert missing.value.code == "model_not_found"
    unknown = httpx.post(f"{app.url}/v1/embeddings", json={})
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "invalid_request_error"


def test_sync_client_whole_and_streamed(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="scripted/hello", messages=[{"role": "user", "content": "Hi"}])
    text = whole.choices[0].message.content
    assert text is not None and text.startswith("Hello! I am a **scripted** model.")
    assert whole.object == "chat.completion" and whole.choices[0].finish_reason == "stop"
    assert whole.usage is not None and whole.usage.total_tokens > 0
    chunks = list(client.chat.completions.create(
        model="scripted/hello", messages=[{"role": "user", "content": "Hi"}], stream=True,
        stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1 and all(c.usage is None for c in chunks[:-1])
    plain = list(client.chat.completions.create(model="scripted/hello", messages=[{"role": "user", "content": "Hi"}],
                                                stream=True))
    assert all(c.choices for c in plain)  # no usage chunk unless asked for


async def test_async_client_whole_and_streamed(aclient: openai.AsyncOpenAI) -> None:
    whole = await aclient.chat.completions.create(
        model="scripted/echo", messages=[{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "Ping"}])
    assert whole.choices[0].message.content == "You said: Ping"
    stream = await aclient.chat.completions.create(model="scripted/echo", stream=True,
                                                   messages=[{"role": "user", "content": "Pong"}])
    pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(pieces) == "You said: Pong" and len(pieces) > 2  # streamed, not sent whole


def test_client_tools_round_trip(client: openai.OpenAI, app: AppProcess) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    asked = client.chat.completions.create(model="scripted/oa_weather_sync", messages=messages,
                                           tools=[WEATHER_TOOL])
    choice = asked.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Let me check."
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1 and calls[0].type == "function"
    assert calls[0].function.name == "get_weather" and json.loads(calls[0].function.arguments) == {"city": "Paris"}
    # Lantern did not run the client's tool: the client does, and sends the result back.
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": calls[0].id, "content": '{"temperature_c": 18}'}]
    answered = client.chat.completions.with_raw_response.create(
        model="scripted/oa_weather_sync", messages=messages, tools=[WEATHER_TOOL])
    final = answered.parse()
    assert final.choices[0].message.content == "It is 18 °C in Paris."
    assert final.choices[0].finish_reason == "stop"
    # History holds the exchange as Lantern shows its own tool calls: a card with the call and its output.
    conversation = httpx.get(f"{app.url}/api/conversations/{answered.headers['X-Conversation-Id']}").json()
    assert [m["role"] for m in conversation["messages"]] == ["user", "assistant", "assistant"]
    card = conversation["messages"][1]["extra"]["parts"][-1]
    assert card["name"] == "get_weather" and card["args"] == {"city": "Paris"} and "18" in card["output"]
    assert conversation["messages"][2]["content"] == "It is 18 °C in Paris."


async def test_streamed_tool_call_deltas(aclient: openai.AsyncOpenAI) -> None:
    stream = await aclient.chat.completions.create(
        model="scripted/oa_weather_async", messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL], stream=True)
    chunks = [c async for c in stream]
    deltas = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or []]
    assert len(deltas) == 1 and deltas[0].index == 0 and deltas[0].id == "call_w1"
    assert deltas[0].function is not None and deltas[0].function.name == "get_weather"
    assert json.loads(deltas[0].function.arguments or "") == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tools_and_response_format_reach_an_openai_compatible_upstream(
        client: openai.OpenAI, fake_upstream: FakeOpenAI) -> None:
    fake_upstream.replies = [FakeReply(text="", tool_calls=[{"name": "get_weather", "args": {"city": "Oslo"}}])]
    asked = client.chat.completions.create(model="fake/fake-model", tools=[WEATHER_TOOL], temperature=0.2,
                                           messages=[{"role": "user", "content": "Weather in Oslo?"}])
    calls = asked.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "get_weather"
    sent = fake_upstream.requests[-1]
    assert sent["tools"][0]["function"]["name"] == "get_weather" and sent["temperature"] == 0.2
    fake_upstream.replies = [FakeReply(text='{"city": "Oslo", "temperature_c": 3}')]
    parsed = client.chat.completions.parse(model="fake/fake-model", response_format=Weather, messages=[
        {"role": "user", "content": "Weather in Oslo?"}, asked.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "3 °C"}])
    assert parsed.choices[0].message.parsed == Weather(city="Oslo", temperature_c=3)
    sent = fake_upstream.requests[-1]
    assert sent["response_format"]["type"] == "json_schema"
    assert set(sent["response_format"]["json_schema"]["schema"]["properties"]) == {"city", "temperature_c"}
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "tool"]
    assert sent["messages"][1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent["messages"][2]["tool_call_id"] == calls[0].id


def test_response_format_from_a_scripted_model(client: openai.OpenAI) -> None:
    parsed = client.chat.completions.parse(model="scripted/oa_json", response_format=Weather,
                                           messages=[{"role": "user", "content": "Weather in Paris?"}])
    assert parsed.choices[0].message.parsed == Weather(city="Paris", temperature_c=18)
    loose = client.chat.completions.create(model="scripted/oa_json", response_format={"type": "json_object"},
                                           messages=[{"role": "user", "content": "Weather in Paris, as JSON"}])
    assert json.loads(loose.choices[0].message.content or "")["city"] == "Paris"


def test_stop_sequences_and_max_tokens(client: openai.OpenAI) -> None:
    stopped = client.chat.completions.create(model="scripted/oa_stop", stop=["STOP"], max_completion_tokens=50,
                                             messages=[{"role": "user", "content": "Count"}])
    assert stopped.choices[0].message.content == "one, two, three "
    assert stopped.choices[0].finish_reason == "stop"
    streamed = client.chat.completions.create(model="scripted/oa_stop", stop="STOP", max_tokens=50, stream=True,
                                              messages=[{"role": "user", "content": "Count"}])
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "one, two, three "


def test_a_named_chain_falls_back(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="chain/sturdy", messages=[{"role": "user", "content": "Hi"}])
    assert (reply.choices[0].message.content or "").startswith("Hello! I am a **scripted** model.")


def test_errors_in_openai_shape(client: openai.OpenAI) -> None:
    hi: Any = [{"role": "user", "content": "Hi"}]
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="nowhere/model", messages=hi)
    assert unknown.value.code == "model_not_found" and unknown.value.type == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="scripted/hello", messages=hi, temperature=5)
    assert bad.value.param == "temperature"
    with pytest.raises(openai.BadRequestError) as no_tools:
        client.chat.completions.create(model="notools/plain", messages=hi, tools=[WEATHER_TOOL])
    assert no_tools.value.param == "tools" and "cannot call tools" in no_tools.value.message
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="scripted/hello", messages=[  # a result for a call nobody made
            {"role": "user", "content": "Hi"}, {"role": "tool", "tool_call_id": "call_x", "content": "1"}])
    with pytest.raises(openai.InternalServerError) as down:  # fails before saying anything: a real status
        client.chat.completions.create(model="scripted/oa_down", messages=hi, stream=True)
    assert down.value.status_code == 502 and down.value.code == "upstream_unavailable"
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="scripted/broken", messages=hi)
    streamed: list[str] = []
    with pytest.raises(openai.APIError, match="upstream went away"):  # fails mid-stream: an error event
        for chunk in client.chat.completions.create(model="scripted/broken", messages=hi, stream=True):
            streamed += [chunk.choices[0].delta.content or ""]
    assert "".join(streamed) == "Partial answer"


def test_the_token_cap_holds_recorded_or_not(client: openai.OpenAI) -> None:
    long: Any = [{"role": "user", "content": "Talk"}]
    with pytest.raises(openai.BadRequestError) as capped:
        client.chat.completions.create(model="scripted/oa_long", messages=long)
    assert capped.value.code == "run_token_cap_exceeded" and "LANTERN_MAX_RUN_TOKENS" in capped.value.message
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="scripted/oa_long", messages=long,
                                       extra_headers={"X-Lantern-Record": "off"})


def test_calls_are_recorded_in_history_unless_the_header_says_off(client: openai.OpenAI, app: AppProcess) -> None:
    def titles() -> list[str]:
        return [c["title"] for c in httpx.get(f"{app.url}/api/conversations", params={"limit": 500}).json()["items"]]

    runs_before = len(httpx.get(f"{app.url}/api/runs", params={"kind": "chat", "limit": 500}).json()["items"])
    kept = client.chat.completions.create(model="scripted/echo", messages=[
        {"role": "system", "content": "You echo."}, {"role": "user", "content": "Remember the lighthouse"}])
    assert "Remember the lighthouse" in titles()
    run = httpx.get(f"{app.url}/api/runs/{kept.id.removeprefix('chatcmpl-')}").json()
    assert run["status"] == "completed" and run["kind"] == "chat" and run["config"]["source"] == "openai"
    conversation = httpx.get(f"{app.url}/api/conversations/{run['conversation_id']}").json()
    assert conversation["system_prompt"] == "You echo."
    assert [(m["role"], m["content"]) for m in conversation["messages"]] == [
        ("user", "Remember the lighthouse"), ("assistant", "You said: Remember the lighthouse")]
    for stream in (False, True):
        reply = client.chat.completions.create(model="scripted/echo", stream=stream,
                                               messages=[{"role": "user", "content": f"Forget the harbour {stream}"}],
                                               extra_headers={"X-Lantern-Record": "off"})
        if stream:
            assert "".join(c.choices[0].delta.content or "" for c in reply if c.choices).endswith(str(stream))
        else:
            assert reply.choices[0].message.content == f"You said: Forget the harbour {stream}"
    assert not any(t.startswith("Forget the harbour") for t in titles())
    runs_after = len(httpx.get(f"{app.url}/api/runs", params={"kind": "chat", "limit": 500}).json()["items"])
    assert runs_after == runs_before + 1


def test_closing_a_stream_stops_the_run(client: openai.OpenAI, app: AppProcess) -> None:
    stream = client.chat.completions.create(model="scripted/slow", stream=True,  # ~8 s of words
                                            messages=[{"role": "user", "content": "Talk slowly"}])
    run_id = ""
    for n, chunk in enumerate(stream):
        run_id = chunk.id.removeprefix("chatcmpl-")
        if n == 3:
            break
    stream.close()
    run = wait_for_run(app, run_id, "stopped")
    message = next(m for m in httpx.get(f"{app.url}/api/conversations/{run['conversation_id']}").json()["messages"]
                   if m["role"] == "assistant")
    assert message["status"] == "stopped" and 0 < len(message["content"]) < len("word " * 400) / 2


def test_a_client_that_gives_up_waiting_stops_the_run(app: AppProcess) -> None:
    body = {"model": "scripted/slow", "messages": [{"role": "user", "content": "Talk slowly, whole"}]}
    with pytest.raises(httpx.ReadTimeout):  # not streamed: the client gives up before the reply is whole
        httpx.post(f"{app.url}/v1/chat/completions", json=body, timeout=0.5)
    newest = httpx.get(f"{app.url}/api/runs", params={"kind": "chat", "limit": 1}).json()["items"][0]
    wait_for_run(app, newest["id"], "stopped")


def test_closing_a_stream_closes_the_upstream_request(client: openai.OpenAI, fake_upstream: FakeOpenAI) -> None:
    fake_upstream.replies = [FakeReply(text="tick " * 200, chunk=5, delay=0.05)]  # ~10 s
    stream = client.chat.completions.create(model="fake/fake-model", stream=True, messages=[
        {"role": "user", "content": "Tick"}], extra_headers={"X-Lantern-Record": "off"})
    for n, _chunk in enumerate(stream):
        if n == 3:
            break
    assert fake_upstream.open_streams == 1
    stream.close()
    deadline = time.monotonic() + 5
    while fake_upstream.open_streams and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake_upstream.open_streams == 0


def wait_for_run(app: AppProcess, run_id: str, status: str, timeout: float = 5) -> dict[str, Any]:
    """The run once it has `status` (fails after `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = httpx.get(f"{app.url}/api/runs/{run_id}").json()
        if run["status"] == status or time.monotonic() > deadline:
            assert run["status"] == status, run
            return run
        time.sleep(0.1)


# ---- shared mode: tokens, ownership, rate limit ----------------------------------------------------------

@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedApp]:
    """Login required: admin `ada`, member `bob`; three runs per user per minute."""
    data = tmp_path_factory.mktemp("openai-shared") / "data"
    for name, password, role in (("ada", ADMIN_PASSWORD, ["--admin"]), ("bob", MEMBER_PASSWORD, [])):
        added = run_users_cli(data, "add", name, *role, password=password)
        assert added.returncode == 0, added.stderr
    proc = AppProcess(data, {"LANTERN_REQUIRE_LOGIN": "1", "LANTERN_RUNS_PER_MINUTE": "3",
                             "LANTERN_DEFAULT_MODEL": "scripted/hello", "DATABASE_URL": ""})
    proc.wait_ready()
    yield SharedApp(proc=proc, data=data)
    proc.stop()


def test_shared_mode_refuses_a_bad_token_in_openai_shape(shared: SharedApp) -> None:
    with openai.OpenAI(base_url=f"{shared.url}/v1", api_key="lt_not-a-real-token", max_retries=0) as sdk:
        with pytest.raises(openai.AuthenticationError) as listing:
            sdk.models.list()
        with pytest.raises(openai.AuthenticationError):
            sdk.chat.completions.create(model="scripted/hello", messages=[{"role": "user", "content": "Hi"}])
    assert listing.value.code == "invalid_api_key" and listing.value.type == "invalid_request_error"
    anonymous = httpx.get(f"{shared.url}/v1/models", headers={"Accept": "*/*"})  # as curl asks: 401, no login page
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "invalid_api_key"


def test_shared_mode_records_the_call_for_the_token_owner(shared: SharedApp) -> None:
    ada = shared.token("ada")
    with openai.OpenAI(base_url=f"{shared.url}/v1", api_key=ada, max_retries=0) as sdk:
        reply = sdk.chat.completions.create(model="scripted/echo", messages=[{"role": "user", "content": "Ada's note"}])
    assert reply.choices[0].message.content == "You said: Ada's note"
    mine = httpx.get(f"{shared.url}/api/conversations", headers={"Authorization": f"Bearer {ada}"}).json()
    theirs = httpx.get(f"{shared.url}/api/conversations",
                       headers={"Authorization": f"Bearer {shared.token('bob')}"}).json()
    assert "Ada's note" in [c["title"] for c in mine["items"]]
    assert "Ada's note" not in [c["title"] for c in theirs["items"]]


def test_shared_mode_rate_limit(shared: SharedApp) -> None:
    with openai.OpenAI(base_url=f"{shared.url}/v1", api_key=shared.token("bob", "limits"), max_retries=0) as sdk:
        for n in range(3):
            sdk.chat.completions.create(model="scripted/echo", messages=[{"role": "user", "content": f"n{n}"}])
        with pytest.raises(openai.RateLimitError) as limited:
            sdk.chat.completions.create(model="scripted/echo", messages=[{"role": "user", "content": "one more"}],
                                        extra_headers={"X-Lantern-Record": "off"})
    assert limited.value.code == "rate_limit_exceeded"
    assert int(limited.value.response.headers["Retry-After"]) > 0
