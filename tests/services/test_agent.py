"""The agent loop with real tools: scripted models, and the OpenAI wire format over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.chat.agent import MAX_STEPS, run_agent
from services.core.errors import BadInput
from services.core.events import TextDelta, ToolCall, ToolOutput
from services.export.conversation import conversation_document
from services.providers.base import ChatMessage, ChatRequest
from services.providers.openai_compat import OpenAICompatProvider
from services.providers.scripted import ScriptedProvider
from services.tools.registry import build_tools
from storage import conversations as conv_repo
from tests.fakes.openai_server import FakeOpenAI, Reply

QUESTION = ChatRequest(model="analyst", messages=[ChatMessage(role="user", content="How many regions?")])


@pytest.fixture
def tools(tmp_path: Path) -> dict[str, Any]:
    return build_tools(tmp_path)


def db_bytes(tmp_path: Path) -> bytes:
    return (tmp_path / "sample_business.db").read_bytes()


async def test_tool_call_output_and_answer_stream_in_order(tools: dict[str, Any]) -> None:
    provider = ScriptedProvider()
    provider.add_script("analyst", [
        {"text": "Checking.", "tool_calls": [{"name": "sql_query",
                                              "args": {"query": "SELECT COUNT(*) AS n FROM regions"}}]},
        "There are 5 regions."])
    events = [e async for e in run_agent(provider, QUESTION, tools)]
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("ToolCall") < kinds.index("ToolOutput") < len(kinds) - 1 - kinds[::-1].index("TextDelta")
    output = next(e for e in events if isinstance(e, ToolOutput))
    assert not output.is_error and "| n |" in output.output and "| 5 |" in output.output
    assert output.seconds is not None and output.seconds >= 0
    # The model's second call saw its own call and the result.
    second = provider.requests[1].messages
    assert second[-2].tool_calls[0].name == "sql_query"
    assert second[-1].role == "tool" and "| 5 |" in second[-1].content


@pytest.mark.parametrize("query", ["DROP TABLE orders", "UPDATE orders SET quantity = 0",
                                   "ATTACH DATABASE 'x.db' AS x", "SELECT 1; DELETE FROM orders"])
async def test_bad_sql_becomes_an_error_the_model_recovers_from(tools: dict[str, Any], tmp_path: Path,
                                                                 query: str) -> None:
    before = db_bytes(tmp_path)
    provider = ScriptedProvider()
    provider.add_script("analyst", [{"tool_calls": [{"name": "sql_query", "args": {"query": query}}]},
                                    "Sorry, I cannot change data."])
    events = [e async for e in run_agent(provider, QUESTION, tools)]
    output = next(e for e in events if isinstance(e, ToolOutput))
    assert output.is_error and output.output
    assert "".join(e.delta for e in events if isinstance(e, TextDelta)) == "Sorry, I cannot change data."
    assert provider.requests[1].messages[-1].is_error
    assert db_bytes(tmp_path) == before


@pytest.mark.parametrize(("call", "says"), [
    ({"name": "rm_rf", "args": {}}, "Unknown tool 'rm_rf'"),
    ({"name": "sql_query", "args": {"sql": "SELECT 1"}}, "Invalid arguments for sql_query"),
    ({"name": "calculator", "args": {"_raw": "{not json"}}, "not valid JSON"),
])
async def test_unknown_tools_and_invalid_arguments_are_errors(tools: dict[str, Any], call: dict[str, Any],
                                                              says: str) -> None:
    provider = ScriptedProvider()
    provider.add_script("analyst", [{"tool_calls": [call]}, "Recovered."])
    events = [e async for e in run_agent(provider, QUESTION, tools)]
    output = next(e for e in events if isinstance(e, ToolOutput))
    assert output.is_error and says in output.output


async def test_step_limit_ends_with_an_answer_without_tools(tools: dict[str, Any]) -> None:
    provider = ScriptedProvider()
    provider.add_script("analyst", [{"tool_calls": [{"name": "calculator", "args": {"expression": "1+1"}}]}])
    events = [e async for e in run_agent(provider, QUESTION, tools, max_steps=2)]
    assert sum(isinstance(e, ToolCall) for e in events) == 3  # the last, tool-less call still answered with one
    assert [len(r.tools) > 0 for r in provider.requests] == [True, True, False]
    assert MAX_STEPS >= 3


async def test_openai_wire_format_drives_the_loop(tools: dict[str, Any]) -> None:
    replies = [Reply(text="", tool_calls=[{"name": "calculator", "args": {"expression": "(2+3)*4"}}]),
               Reply(text="The answer is 20.")]
    with FakeOpenAI(replies=replies) as fake:
        provider = OpenAICompatProvider(name="vllm", api_key=None, base_url=fake.base_url, key_required=False)
        events = [e async for e in run_agent(provider, QUESTION, tools)]
    call = next(e for e in events if isinstance(e, ToolCall))
    assert call.name == "calculator" and call.args == {"expression": "(2+3)*4"}  # fragments were joined
    assert next(e for e in events if isinstance(e, ToolOutput)).output.strip() == "20"
    first, second = fake.requests
    assert {t["function"]["name"] for t in first["tools"]} == {"sql_query", "describe_data", "calculator"}
    assert second["messages"][-2]["tool_calls"][0]["function"] == {
        "name": "calculator", "arguments": json.dumps({"expression": "(2+3)*4"})}
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": call.id, "content": "20"}


async def test_chat_stores_tool_cards_and_export_contains_them(lantern: Any) -> None:
    start = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "Regions?"}],
                                     model="scripted/analyst", tools=["sql_query"])
    async for _ in lantern.runs.subscribe(start.run.id):
        pass
    msgs = await lantern.db.call(conv_repo.list_messages, conversation_id=start.conversation_id)
    reply = msgs[-1]
    assert reply.status == "completed"
    assert reply.content == "Let me count the regions.\n\nWe sell in **5 regions**."
    [tool] = [p for p in reply.extra["parts"] if p["type"] == "tool"]
    assert tool["args"] == {"query": "SELECT COUNT(*) AS regions FROM regions"} and "| 5 |" in tool["output"]
    doc = await lantern.db.call(conversation_document, conversation_id=start.conversation_id, user_id="local")
    exported = json.dumps(doc)
    assert "SELECT COUNT(*) AS regions FROM regions" in exported and "5 regions" in exported


async def test_tools_are_refused_for_models_without_them_and_unknown_names(lantern: Any) -> None:
    ask = {"user_id": "local", "messages": [{"role": "user", "content": "Hi"}]}
    with pytest.raises(BadInput, match="scripted/echo cannot call tools"):  # its script never calls one
        await lantern.chat.start(**ask, model="scripted/echo", tools=["sql_query"])
    with pytest.raises(BadInput, match="unknown tool"):
        await lantern.chat.start(**ask, model="scripted/echo", tools=["shell"])
    assert (await lantern.db.call(conv_repo.list_conversations, user_id="local"))[1] == 0
