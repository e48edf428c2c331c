"""What the embedded model is shown: its chat template knows no tools, so tools, calls and results become text.

A tool call is the JSON object `{"tool": <name>, "arguments": {...}}`, held to the offered tools' schemas by a
grammar (`gbnf.tool_grammar`). A 135M model offered tools in a system prompt alone never called one (0 of 4
questions that needed a tool, measured); one example exchange per tool made it call for 3 of 4, so the examples
are shown. After a tool's result the model answers in plain text (a grammar keeps it from starting with "{"): left
free, it wrote another call as text.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from services.core.events import ToolCall
from services.providers.base import ChatRequest, ToolSpec
from services.providers.gbnf import ANSWER, schema_grammar, tool_grammar

MAX_EXAMPLES = 4  # one example exchange per tool costs ~40 prompt tokens of a 2,048-token context
SUCH_AS = re.compile(r"\bsuch as (.+?)(?: or |[.;]\s*$|$)")


@dataclass(frozen=True, kw_only=True, slots=True)
class Plan:
    """Messages in the model's chat format, the grammar to hold the reply to (or None), whether calls may come."""

    messages: list[dict[str, Any]]
    grammar: str | None
    calls: bool


def plan(request: ChatRequest) -> Plan:
    """How to ask the embedded model for this request."""
    # A schema wins over tools (the reply must be that JSON); after a tool's result the answer is plain text.
    offer = request.tools and request.response_schema is None and not _answered(request)
    tools = list(request.tools) if offer else []
    system = request.system or ""
    if tools:
        system = (system + "\n\n" if system else "") + _tools_prompt(tools)
    head = [{"role": "system", "content": system}] if system else []
    messages = head + (_examples(tools) if tools else []) + [_message(m) for m in request.messages]
    if request.response_schema is not None:
        return Plan(messages=messages, grammar=schema_grammar(request.response_schema), calls=False)
    if tools:
        return Plan(messages=messages, grammar=tool_grammar([(t.name, t.parameters) for t in tools]), calls=True)
    if _answered(request):  # answering with a tool's result: plain text (left free, it wrote a call as text)
        return Plan(messages=messages, grammar=ANSWER, calls=False)
    return Plan(messages=messages, grammar=None, calls=False)


def tool_call(text: str) -> ToolCall:
    """A held reply as a call; a cut-off one keeps its text under `_raw` for the tool layer to refuse."""
    call_id = f"call_{uuid.uuid4().hex[:12]}"
    try:
        data = json.loads(text)
        return ToolCall(id=call_id, name=str(data["tool"]), args=dict(data.get("arguments") or {}))
    except (ValueError, KeyError, TypeError):
        named = re.search(r'"tool"\s*:\s*"([^"]*)"', text)
        return ToolCall(id=call_id, name=named.group(1) if named else "unknown", args={"_raw": text})


def _answered(request: ChatRequest) -> bool:
    """Whether a tool result came after the person's last message (then the model answers with it)."""
    for m in reversed(request.messages):
        if m.role == "tool":
            return True
        if m.role == "user":
            return False
    return False


def _message(m: Any) -> dict[str, Any]:
    """One message in the plain chat format: calls as their JSON, results as a user turn saying what came back."""
    if m.role == "tool":
        verb = "failed" if m.is_error else "returned"
        return {"role": "user", "content": f"The {m.name or 'tool'} tool {verb}:\n{m.content}\n\n"
                                           "Answer my question with this result."}
    if m.tool_calls:
        return {"role": "assistant", "content": "\n".join(
            json.dumps({"tool": c.name, "arguments": c.args}) for c in m.tool_calls)}
    return {"role": m.role, "content": m.content}


def _tools_prompt(tools: list[ToolSpec]) -> str:
    """The offered tools and how to call one."""
    lines = [f"- {t.name}: {t.description} Arguments: {json.dumps(_shape(t.parameters))}" for t in tools]
    return ("You can call these tools:\n" + "\n".join(lines) + '\nTo call a tool, reply with only a JSON object '
            '{"tool": "<tool name>", "arguments": {...}}. When no tool helps, answer in plain text.')


def _examples(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    """One question-and-call exchange per tool (a small model copies the shape it has seen)."""
    out: list[dict[str, Any]] = []
    for t in tools[:MAX_EXAMPLES]:
        purpose = t.description.split(". ")[0].rstrip(".")
        purpose = purpose[:1].lower() + purpose[1:]
        call = {"tool": t.name, "arguments": _example_args(t.parameters)}
        out += [{"role": "user", "content": f"Which tool would you call to {purpose}?"},
                {"role": "assistant", "content": json.dumps(call)}]
    return out


def _shape(schema: dict[str, Any]) -> dict[str, str]:
    """Argument names and types, compactly."""
    return {name: str(prop.get("type") or "value") for name, prop in (schema.get("properties") or {}).items()}


def _example_args(schema: dict[str, Any]) -> dict[str, Any]:
    """Plausible arguments: the schema's examples, default, first enum value, a "such as" phrase, or a placeholder."""
    properties = schema.get("properties") or {}
    required = schema.get("required") or []
    out: dict[str, Any] = {}
    for name in required:
        prop = properties.get(name, {})
        such_as = SUCH_AS.search(str(prop.get("description") or ""))
        if prop.get("examples"):
            out[name] = prop["examples"][0]
        elif prop.get("default") is not None:
            out[name] = prop["default"]
        elif prop.get("enum"):
            out[name] = prop["enum"][0]
        elif such_as and prop.get("type") == "string":
            out[name] = such_as.group(1)
        else:
            out[name] = {"integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}.get(
                str(prop.get("type")), f"<{name}>")
    return out
