"""Conversation export: a lossless JSON document of every branch; Markdown and PDF of the current one.

`conversation_document` reads the database (call it through `Database.call`); the `to_*` functions
are pure and take that document. `to_pdf` is CPU-heavy: callers run it with `asyncio.to_thread`.
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from datetime import UTC, datetime
from functools import lru_cache
from html import escape
from typing import Any

from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound
from sqlmodel import Session

from services.errors import LanternError
from storage import conversations as conv_repo
from storage.models import Conversation, Message

DOCUMENT_FORMAT = "lantern.conversation"
DOCUMENT_VERSION = 1
FORMATS = ("md", "json", "pdf")
MEDIA_TYPES = {"md": "text/markdown; charset=utf-8", "json": "application/json", "pdf": "application/pdf"}
# Whitelists: only these columns ever leave the database in an export.
CONVERSATION_FIELDS = ("id", "title", "model", "system_prompt", "temperature", "created_at", "updated_at", "leaf_id")
MESSAGE_FIELDS = ("id", "parent_id", "position", "role", "content", "status", "provider", "model",
                  "input_tokens", "output_tokens", "cost_usd", "run_id", "extra", "created_at")
STATUS_LABEL = {"stopped": "stopped", "failed": "failed", "interrupted": "interrupted", "running": "still generating"}
INSTALL_HINT = ("PDF export needs WeasyPrint and its system libraries: "
                "pip install 'weasyprint>=62' and apt-get install libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core")
SLUG_CHARS = 60

# WeasyPrint's thread safety is not documented; one render at a time also keeps a 2-core machine responsive.
_pdf_lock = threading.Lock()


class ExportUnavailable(LanternError):
    """This export format cannot be produced here (a library or system package is missing)."""

    kind = "export_unavailable"


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


def to_json(doc: dict[str, Any]) -> str:
    """The document as readable JSON."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


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


def to_pdf(doc: dict[str, Any]) -> bytes:
    """The current branch as a PDF with real text; blocking, so run it in a worker thread."""
    return html_to_pdf(to_html(doc))


def html_to_pdf(html: str) -> bytes:
    """Print a self-contained HTML page to PDF, fetching nothing; blocking, so run it in a worker thread."""
    try:
        import weasyprint  # imported here: the other formats must work without it
    except (ImportError, OSError) as exc:  # OSError: WeasyPrint is installed but Pango is not
        raise ExportUnavailable(f"{INSTALL_HINT} ({_first_line(exc)})") from exc
    with _pdf_lock:
        pdf = weasyprint.HTML(string=html, url_fetcher=_refusing_fetcher(weasyprint)).write_pdf()
    assert isinstance(pdf, bytes)
    return pdf


def render_markdown_html(text: str) -> str:
    """Model output as print HTML: raw HTML escaped, code highlighted, images shown as text (never fetched)."""
    return _markdown().render(text)


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
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(doc["title"])}</title>'
            f"<style>{PAGE_CSS}{code_css()}</style></head><body>{''.join(parts)}</body></html>")


def filename(doc: dict[str, Any], fmt: str) -> str:
    """A safe ASCII file name from the title, e.g. `my-chat-about-sql.md`."""
    ascii_title = unicodedata.normalize("NFKD", doc["title"]).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")[:SLUG_CHARS].rstrip("-")
    return f"{slug or 'conversation'}.{fmt}"


def current_branch(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The document's messages on the current branch, root first."""
    by_id = {m["id"]: m for m in doc["messages"]}
    return [by_id[i] for i in doc["current_path"] if i in by_id]


PAGE_CSS = """
@page { size: A4; margin: 18mm 16mm 20mm;
  @bottom-right { content: counter(page) " / " counter(pages); font-size: 8pt; color: #888; } }
body { font-family: "DejaVu Sans", sans-serif; font-size: 10pt; line-height: 1.45; color: #1b1b1b; }
h1 { font-size: 17pt; margin: 0 0 1mm; }
.meta { color: #666; font-size: 8.5pt; margin: 0 0 6mm; }
.system { margin: 0 0 5mm; font-size: 9pt; color: #444; }
.msg { border-top: 0.6pt solid #d8d8d8; padding-top: 2mm; margin-bottom: 4mm; }
.head { margin: 0 0 1.5mm; }
.who { font-weight: bold; }
.when, .usage { color: #777; font-size: 8pt; }
.usage { margin: 1mm 0 0; }
.status, .error { color: #b3261e; font-weight: bold; font-size: 8.5pt; }
.plain { white-space: pre-wrap; overflow-wrap: anywhere; }
.user .plain { background: #f1f4f9; padding: 2mm 3mm; border-radius: 2mm; }
.md p { margin: 0 0 2mm; }
.md a { color: #1a5fb4; }
pre, code { font-family: "DejaVu Sans Mono", monospace; font-size: 8.5pt; }
pre { background: #f6f8fa; padding: 2mm 3mm; border-radius: 1.5mm; white-space: pre-wrap; overflow-wrap: anywhere; }
:not(pre) > code { background: #f0f0f0; padding: 0 0.8mm; }
table { border-collapse: collapse; margin: 0 0 2mm; }
th, td { border: 0.5pt solid #c8c8c8; padding: 1mm 2mm; }
blockquote { margin: 0 0 2mm; padding-left: 3mm; border-left: 1.5pt solid #ccc; color: #444; }
.img { color: #666; font-style: italic; }
"""


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


def iso(value: datetime) -> str:
    """ISO 8601 with an explicit UTC offset (SQLite hands back naive datetimes, stored as UTC)."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def human_time(iso: str) -> str:
    """`2025-06-01 14:03 UTC` from an ISO timestamp."""
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _speaker(message: dict[str, Any]) -> str:
    """`You`, `Assistant (model)` or the role."""
    if message["role"] == "user":
        return "You"
    if message["role"] == "assistant":
        return f"Assistant ({message['model']})" if message.get("model") else "Assistant"
    return str(message["role"]).title()


def _usage(message: dict[str, Any]) -> str:
    """`12 in / 30 out tokens · $0.0012`."""
    return f"{message['input_tokens']} in / {message['output_tokens']} out tokens · {money(message['cost_usd'])}"


def money(cost: float) -> str:
    """Dollars with enough decimals (up to six) to show sub-cent costs: `$0.0123`, `$0.50`, `$12.00`."""
    if cost >= 1:
        return f"${cost:,.2f}"
    whole, _, fraction = f"{cost:.6f}".rstrip("0").partition(".")
    return f"${whole}.{fraction.ljust(2, '0')}"


def _error_message(message: dict[str, Any]) -> str:
    """The stored error of a failed reply, if any."""
    error = (message.get("extra") or {}).get("error")
    return str(error.get("message") or "") if isinstance(error, dict) else ""


def quote(text: str) -> str:
    """Text as a Markdown blockquote."""
    return "\n".join(f"> {line}".rstrip() for line in text.splitlines() or [""])


def _one_line(text: str) -> str:
    """Whitespace collapsed, so a title stays one heading."""
    return " ".join(text.split()) or "Conversation"


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


def close_open_fence(text: str) -> str:
    """The content, plus a closing fence if it ends inside a code block (a stopped reply can).

    Without it, everything after the message in the export would read as code.
    """
    opening: str | None = None
    for line in text.splitlines():
        match = _FENCE.match(line)
        if match is None:
            continue
        fence, rest = match.groups()
        if opening is None:
            if not (fence[0] == "`" and "`" in rest):
                opening = fence
        elif fence[0] == opening[0] and len(fence) >= len(opening) and not rest.strip():
            opening = None
    return text if opening is None else text.rstrip("\n") + "\n" + opening


def _first_line(exc: BaseException) -> str:
    """The first line of an error, short."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _refusing_fetcher(weasyprint: Any) -> Any:
    """A URL fetcher that loads nothing: an export never reaches the network or the disk."""
    base = getattr(weasyprint, "URLFetcher", None)
    if base is not None:  # WeasyPrint >= 66 takes a fetcher object
        return base(allowed_protocols=())

    def refuse(url: str) -> dict[str, Any]:
        raise ValueError(f"exports do not load resources ({url[:80]})")

    return refuse


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    """CommonMark + tables + strikethrough with raw HTML disabled (the chat view's rules)."""
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False,
                                   "highlight": _highlight})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("image", _image_as_text)
    return md


def _image_as_text(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    """An image as its alt text and address: an export never fetches what a model pointed at."""
    token = tokens[idx]
    alt = renderer.renderInlineAsText(token.children or [], options, env)
    src = str(token.attrGet("src") or "")
    return f'<span class="img">[image: {escape(alt)}{" — " + escape(src) if src else ""}]</span>'


def _highlight(code: str, lang: str, _attrs: str) -> str:
    """A highlighted code block; unknown languages stay plain (escaped)."""
    try:
        lexer = get_lexer_by_name(lang) if lang else None
    except ClassNotFound:
        lexer = None
    body = highlight(code, lexer, HtmlFormatter(nowrap=True)) if lexer is not None else escape(code)
    return f'<pre class="hl"><code>{body}</code></pre>'


@lru_cache(maxsize=1)
def code_css() -> str:
    """Pygments' light style for code blocks."""
    return str(HtmlFormatter(style="friendly").get_style_defs(".hl"))
