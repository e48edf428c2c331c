"""An MCP tool result as the text a model reads (mcp_adapter's, split out: the SDK's result types only)."""

from __future__ import annotations

import json
from typing import Any

from mcp import types


def render_result(result: types.CallToolResult) -> tuple[str, bool]:
    """A result as text: structured content as pretty JSON, text as is, media and resources described.

    Servers send a structured result twice (as JSON text too), and FastMCP wraps a plain value as
    {"result": value}: each is shown once, a plain value as its text.
    """
    structured = result.structuredContent
    texts = [b.text for b in result.content if isinstance(b, types.TextContent)]
    plain = structured["result"] if isinstance(structured, dict) and set(structured) == {"result"} else structured
    parts = []
    if structured is not None and not (_is_scalar(plain) and any(_same(t, plain) for t in texts)):
        parts.append("```json\n" + json.dumps(structured, indent=2, ensure_ascii=False, default=str) + "\n```")
    for block in result.content:
        if isinstance(block, types.TextContent):
            if structured is None or not (_same(block.text, structured) or (_same(block.text, plain)
                                                                              and not _is_scalar(plain))):
                parts.append(block.text)
        elif isinstance(block, types.ImageContent | types.AudioContent):
            parts.append(f"[{block.type} {block.mimeType}, about {len(block.data) * 3 // 4:,} bytes, not shown]")
        elif isinstance(block, types.EmbeddedResource):
            res = block.resource
            parts.append(res.text if isinstance(res, types.TextResourceContents)
                         else f"[resource {res.uri}, {res.mimeType or 'binary'}, not shown]")
        elif isinstance(block, types.ResourceLink):
            parts.append(f"[{block.name}]({block.uri})")
    return "\n\n".join(p for p in parts if p), bool(result.isError)


def _same(text: str, value: Any) -> bool:
    """Whether a text block only repeats `value` (as its JSON, or as the string itself)."""
    if isinstance(value, str) and text.strip() == value.strip():
        return True
    try:
        return bool(json.loads(text) == value)
    except ValueError:
        return False


def _is_scalar(value: Any) -> bool:
    """A value better shown as its text than as JSON."""
    return isinstance(value, str | int | float | bool)
