"""What a stream of chat-completion chunks adds up to: text, tool calls, usage and why it stopped.

Written against what servers really send, not only what OpenAI documents: llama-cpp-python repeats a tool's
id and name in every fragment and never reports usage while streaming; servers cut a reply at the length
limit or end the body without `[DONE]`.
"""

from __future__ import annotations

import json
from typing import Any

from services.core.errors import ProviderUnavailable
from services.providers.base import tokens_for_chars

# finish_reason → our stop_reason (services.events.STOP_REASONS); anything else a server invents ends normally.
FINISH_REASONS = {"stop": "end", "length": "length", "tool_calls": "tool_calls", "function_call": "tool_calls",
                  "content_filter": "content_filter", "abort": "interrupted", "error": "interrupted"}


class ChunkReader:
    """Fold chunks as they arrive: tool calls (in fragments, by index), usage, finish_reason, `[DONE]`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: dict[int, dict[str, str]] = {}
        self.input_tokens: int | None = None  # None until the server reports usage
        self.output_tokens: int | None = None
        self.finish_reason: str | None = None
        self.output_chars = 0  # text and tool calls streamed: the output count when the server gives none
        self.done = False

    def feed(self, data: bytes, request: Any) -> list[str]:
        """One event's data; returns its text deltas. `[DONE]` ends the reply; an error event raises."""
        if self.done:
            return []
        if data.startswith(b"[DONE]"):
            self.done = True
            return []
        texts: list[str] = []
        try:
            chunk = json.loads(data)
            if error := chunk.get("error"):  # as the SDK: a server reporting a failure mid-stream
                import openai

                message = error.get("message") if isinstance(error, dict) else None
                raise openai.APIError(message if isinstance(message, str) and message
                                      else "An error occurred during streaming", request=request, body=error)
            if (usage := chunk.get("usage")) is not None:
                self.input_tokens = usage.get("prompt_tokens") or 0
                self.output_tokens = usage.get("completion_tokens") or 0
            for choice in chunk.get("choices") or ():
                # Read before the delta: servers send the reason in a chunk whose delta is empty.
                self.finish_reason = choice.get("finish_reason") or self.finish_reason
                if not (delta := choice.get("delta")):
                    continue
                if content := delta.get("content"):
                    texts.append(content)
                    self.output_chars += len(content)
                for frag in delta.get("tool_calls") or ():
                    self._fragment(frag)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:  # not JSON, or not a chunk's shape
            raise ProviderUnavailable(f"{self.name} sent a malformed stream chunk") from exc
        return texts

    def stop_reason(self) -> str:
        """Why the reply ended: the server's finish_reason, else `interrupted` if the stream just stopped."""
        if self.finish_reason is None:
            return "end" if self.done else "interrupted"
        reason = FINISH_REASONS.get(self.finish_reason, "end")
        # Some servers say "stop" after calling tools; what the reply asks for is the tools.
        return "tool_calls" if reason == "end" and self.calls else reason

    def estimated_output(self) -> int:
        """Output tokens counted from what was streamed, for servers that report none."""
        return tokens_for_chars(self.output_chars)

    def _fragment(self, frag: dict[str, Any]) -> None:
        """One piece of a tool call: the name is set once (some servers repeat it), arguments concatenate."""
        call = self.calls.setdefault(frag["index"], {"id": "", "name": "", "arguments": ""})
        call["id"] = call["id"] or frag.get("id") or ""
        if (function := frag.get("function")) is not None:
            if not call["name"] and (name := function.get("name")):
                call["name"] = name
                self.output_chars += len(name)
            if arguments := function.get("arguments"):
                call["arguments"] += arguments
                self.output_chars += len(arguments)
