"""A chat run as a file: the reply it wrote, with the model, settings and usage (its conversation has its own)."""

from __future__ import annotations

from html import escape
from typing import Any

from services.chat.reply import ReplyBody
from services.core.runs import ActiveRun
from services.core.usage import usage_text
from services.export.formats import close_open_fence, html_page, quote, render_markdown_html, run_header, slug
from storage.models import Run

CONFIG_FIELDS = ("model", "temperature", "max_tokens", "tools", "dropped_messages")


def document(run: Run, *, active: ActiveRun | None = None) -> dict[str, Any]:
    """The run as a JSON-ready dict (a running reply exports its text so far)."""
    body = active.body if active is not None else None
    live = body.content if isinstance(body, ReplyBody) else ""
    reply = (run.result or {}).get("message", {}).get("content", live)
    return {**run_header(run, "lantern.chat-run"), "conversation_id": run.conversation_id,
            **{k: run.config.get(k) for k in CONFIG_FIELDS}, "reply": reply, "error": run.error}


def to_markdown(doc: dict[str, Any]) -> str:
    """The reply verbatim under a line saying which model wrote it and what it used."""
    out = [f"# {_title(doc)}", "", f"_{_meta(doc)}_", "", close_open_fence(doc["reply"]), ""]
    if doc.get("error"):
        out += [quote(f"Error: {doc['error']}"), ""]
    return "\n".join(out).rstrip("\n") + "\n"


def to_html(doc: dict[str, Any]) -> str:
    """The print page: the reply rendered as Markdown with raw HTML escaped."""
    parts = [f"<h1>{escape(_title(doc))}</h1>", f'<p class="meta">{escape(_meta(doc))}</p>',
             f'<div class="md">{render_markdown_html(doc["reply"])}</div>']
    if doc.get("error"):
        parts.append(f'<p class="error">Error: {escape(doc["error"])}</p>')
    return html_page(_title(doc), parts)


def filename(doc: dict[str, Any], fmt: str) -> str:
    """`reply-<model>-<short id>.<fmt>`."""
    return f"reply-{slug(doc.get('model') or '') or 'chat'}-{doc['id'][:8]}.{fmt}"


def _title(doc: dict[str, Any]) -> str:
    """`Reply from openai/gpt-4o-mini`."""
    return f"Reply from {doc.get('model') or 'a model'}"


def _meta(doc: dict[str, Any]) -> str:
    """Status, start and usage on one line."""
    totals = doc["totals"]
    return (f"{doc['status']} · started {doc['started_at']} · "
            f"{usage_text(totals['input_tokens'], totals['output_tokens'], totals['cost_usd'])}")
