"""The agent loop: model → tool calls → tool outputs → model, until a final answer or a step limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

from services.core.events import Event, TextDelta, ToolCall, ToolOutput
from services.providers.base import ChatMessage, ChatRequest, Provider, ToolSpec
from services.tools.base import Tool, call_tool

MAX_STEPS = 6


async def run_agent(provider: Provider, request: ChatRequest, tools: dict[str, Tool], *,
                    max_steps: int = MAX_STEPS) -> AsyncIterator[Event]:
    """Stream text, each tool call and its output; the model sees every result and may recover.

    After `max_steps` rounds of tool calls the model is asked once more without tools, so a
    conversation always ends in an answer rather than an endless loop.
    """
    specs = tuple(ToolSpec(name=t.name, description=t.description, parameters=t.schema())
                  for t in tools.values())
    messages = list(request.messages)
    for step in range(max_steps + 1):
        offered = specs if step < max_steps else ()
        calls: list[ToolCall] = []
        text: list[str] = []
        async for event in provider.stream(replace(request, messages=messages, tools=offered)):
            if isinstance(event, ToolCall):
                calls.append(event)
            elif isinstance(event, TextDelta):
                text.append(event.delta)
            yield event
        if not calls:
            return
        messages.append(ChatMessage(role="assistant", content="".join(text), tool_calls=tuple(calls)))
        for call in calls:
            raw = call.args["_raw"] if set(call.args) == {"_raw"} else call.args
            result = await call_tool(tools, call.name, raw)
            yield ToolOutput(id=call.id, name=call.name, output=result.output, is_error=result.is_error,
                             seconds=result.seconds)
            messages.append(ChatMessage(role="tool", content=result.output, tool_call_id=call.id,
                                        name=call.name, is_error=result.is_error))
