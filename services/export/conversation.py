"""Conversation export: a lossless JSON document of every branch; Markdown and PDF of the current one.

`conversation_document` reads the database (call it through `Database.call`); the module is this kind's
exporter (services/export/formats.py `Exporter`): `render(conversation, doc, fmt)` makes the file.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape
from typing import Any

from sqlmodel import Session

from services.core.usage import usage_text
from services.export.formats import (
    close_open_fence,
    html_page,
    human_time,
    iso,
    quote,
    render_markdown_html,
    slug,
)
from storage import conversations as conv_repo
from storage.models import Conversation, Message

DOCUMENT_FORMAT = "lantern.conversation"
DOCUMENT_VERSION = 1
# Whitelists: only these columns ever leave the database in an export.
CONVERSATION_FIELDS = ("id", "title", "model", "system_prompt", "temperature", "created_at", "updated_at", "leaf_id")
MESSAGE_FIELDS = ("id", "parent_id", "position", "role", "content", "status", "provider", "model",
                  "input_tokens", "output_tokens", "cost_usd", "run_id", "extra", "created_at")
STATUS_LABEL = {"stopped": "stopped", "failed": "failed", "interrupted": "interrupted", "running": "still generating"}


def conversation_document(session: Session, *, conversation_id: str, user_id: str) -> dict[str, Any] | None:
    """The whole conversation (every branch) as a JSON-ready dict, or None when it is not the user's."""
    conv = conv_repo.get_conversation(session, conversation_id=conversation_id, user_id=user_id)
    if conv is None:
        return None
    messages = conv_repo.list_messages(session, conversation_id=conversation_id)
    path = conv_repo.current_path(session, conversation_id=conversation_id)
    return {
        "format": DOCUMENT_FORMAT,
        "version": DOCUMENT_VERSION,
        "exported_at": iso(datetime.now(UTC)),
        **_conversation_fields(conv),
        "messages": [_message_fields(m) for m in messages],
        "current_path": [entry.message.id for entry in path],
    }


def to_markdown(doc: dict[str, Any]) -> str:
    """The current branch as Markdown; message contents verbatim."""
    meta = [f"Model: {doc['model']}"] if doc.get("model") else []
    meta.append(f"Exported {human_time(doc['exported_at'])}")
    out = [f"# {_one_line(doc['title'])}", "", f"_{' · '.join(meta)}_", ""]
    if doc.get("system_prompt"):
        out += ["**System prompt**", "", quote(doc["system_prompt"]), ""]
    for m in current_branch(doc):
        heading = f"## {_speaker(m)}"
        if m["status"] in STATUS_LABEL:
            heading += f" — {STATUS_LABEL[m['status']]}"
        out += [heading, "", f"_{human_time(m['created_at'])}_", "", close_open_fence(m["content"]), ""]
        if _error_message(m):
            out += [quote(f"Error: {_error_message(m)}"), ""]
        if m["role"] == "assistant":
            out += [f"_{_usage(m)}_", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def to_html(doc: dict[str, Any]) -> str:
    """The print HTML of the current branch: raw HTML in messages is escaped, code highlighted."""
    meta = [f"Model: {doc['model']}"] if doc.get("model") else []
    meta.append(f"Exported {human_time(doc['exported_at'])}")
    parts = [f"<h1>{escape(doc['title'])}</h1>", f'<p class="meta">{escape(" · ".join(meta))}</p>']
    if doc.get("system_prompt"):
        parts.append(f'<div class="system"><b>System prompt</b><div class="plain">{escape(doc["system_prompt"])}'
                     "</div></div>")
    for m in current_branch(doc):
        head = (f'<span class="who">{escape(_speaker(m))}</span> '
                f'<span class="when">{human_time(m["created_at"])}</span>')
        if m["status"] in STATUS_LABEL:
            head += f' <span class="status">{escape(STATUS_LABEL[m["status"]])}</span>'
        body = (f'<div class="plain">{escape(m["content"])}</div>' if m["role"] == "user"
                else f'<div class="md">{render_markdown_html(m["content"])}</div>')
        extra = f'<p class="error">Error: {escape(_error_message(m))}</p>' if _error_message(m) else ""
        if m["role"] == "assistant":
            extra += f'<p class="usage">{escape(_usage(m))}</p>'
        parts.append(f'<section class="msg {escape(m["role"])}"><p class="head">{head}</p>{body}{extra}</section>')
    return html_page(doc["title"], parts)


def filename(doc: dict[str, Any], fmt: str) -> str:
    """A safe ASCII file name from the title, e.g. `my-chat-about-sql.md`."""
    return f"{slug(doc['title']) or 'conversation'}.{fmt}"


def current_branch(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The document's messages on the current branch, root first."""
    by_id = {m["id"]: m for m in doc["messages"]}
    return [by_id[i] for i in doc["current_path"] if i in by_id]


def _conversation_fields(conv: Conversation) -> dict[str, Any]:
    """The exported columns of a conversation."""
    return {name: _json_value(getattr(conv, name)) for name in CONVERSATION_FIELDS}


def _message_fields(message: Message) -> dict[str, Any]:
    """The exported columns of a message."""
    return {name: _json_value(getattr(message, name)) for name in MESSAGE_FIELDS}


def _json_value(value: Any) -> Any:
    """Datetimes as ISO 8601 (UTC), dicts copied; everything else is already JSON-ready."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return json.loads(json.dumps(value))
    return value


def _speaker(message: dict[str, Any]) -> str:
    """`You`, `Assistant (model)` or the role."""
    if message["role"] == "user":
        return "You"
    if message["role"] == "assistant":
        return f"Assistant ({message['model']})" if message.get("model") else "Assistant"
    return str(message["role"]).title()


def _usage(message: dict[str, Any]) -> str:
    """`12 in / 30 out tokens · $0.0012`."""
    return usage_text(message["input_tokens"], message["output_tokens"], message["cost_usd"])


def _error_message(message: dict[str, Any]) -> str:
    """The stored error of a failed reply, if any."""
    error = (message.get("extra") or {}).get("error")
    return str(error.get("message") or "") if isinstance(error, dict) else ""


def _one_line(text: str) -> str:
    """Whitespace collapsed, so a title stays one heading."""
    return " ".join(text.split()) or "Conversation"


