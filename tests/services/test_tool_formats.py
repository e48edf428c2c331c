"""Each provider's own tool-call format, built from our messages (Anthropic and Bedrock need keys to call)."""

from __future__ import annotations

from services.core.events import ToolCall
from services.providers.anthropic_provider import anthropic_messages
from services.providers.base import ChatMessage, ChatRequest, as_dicts
from services.providers.bedrock import bedrock_messages

CALL = ToolCall(id="t1", name="sql_query", args={"query": "SELECT 1"})
CALL2 = ToolCall(id="t2", name="calculator", args={"expression": "1+1"})
HISTORY = [
    ChatMessage(role="user", content="Numbers?"),
    ChatMessage(role="assistant", content="Checking.", tool_calls=(CALL, CALL2)),
    ChatMessage(role="tool", content="| 1 |", tool_call_id="t1", name="sql_query"),
    ChatMessage(role="tool", content="bad", tool_call_id="t2", name="calculator", is_error=True),
]


def test_openai_format() -> None:
    sent = as_dicts(ChatRequest(model="m", messages=HISTORY, system="Be exact"))
    assert sent[0] == {"role": "system", "content": "Be exact"}
    assert sent[2]["tool_calls"][0] == {"id": "t1", "type": "function",
                                        "function": {"name": "sql_query", "arguments": '{"query": "SELECT 1"}'}}
    assert sent[3:] == [{"role": "tool", "tool_call_id": "t1", "content": "| 1 |"},
                        {"role": "tool", "tool_call_id": "t2", "content": "bad"}]


def test_anthropic_format_merges_results_into_one_user_turn() -> None:
    sent = anthropic_messages(HISTORY)
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"] == [{"type": "text", "text": "Checking."},
                                  {"type": "tool_use", "id": "t1", "name": "sql_query", "input": {"query": "SELECT 1"}},
                                  {"type": "tool_use", "id": "t2", "name": "calculator",
                                   "input": {"expression": "1+1"}}]
    assert sent[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "t1", "content": "| 1 |", "is_error": False},
        {"type": "tool_result", "tool_use_id": "t2", "content": "bad", "is_error": True}]


def test_bedrock_format_merges_results_into_one_user_turn() -> None:
    sent = bedrock_messages(HISTORY)
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"][1] == {"toolUse": {"toolUseId": "t1", "name": "sql_query",
                                                 "input": {"query": "SELECT 1"}}}
    assert [b["toolResult"]["status"] for b in sent[2]["content"]] == ["success", "error"]
