"""One exporter protocol for every kind: JSON (lossless), Markdown and PDF, one media-type table, one file name.

A kind's exporter builds a JSON-ready document and says how a person reads it (`to_markdown`, `to_html`) and
what its file is called (`filename`); `render` does the rest the same way for all: JSON with a trailing
newline, PDF printed from the kind's HTML in a worker thread (WeasyPrint is CPU-heavy and fetches nothing),
and a file name no title can turn into a header or a path (services/export/filenames.py).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from html import escape
from typing import Any, Protocol

from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from services.core.errors import BadInput, ExportUnavailable
from services.export.filenames import content_disposition
from storage.models import Run

FORMATS = ("md", "json", "pdf")
MEDIA_TYPES = {"md": "text/markdown; charset=utf-8", "json": "application/json", "pdf": "application/pdf"}
INSTALL_HINT = ("PDF export needs WeasyPrint and its system libraries: "
                "pip install 'weasyprint>=62' and apt-get install libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core")
SLUG_CHARS = 60

# WeasyPrint's thread safety is not documented; one render at a time also keeps a 2-core machine responsive.
_pdf_lock = threading.Lock()


class Exporter(Protocol):
    """How one kind's document is read and named; the document itself is the JSON export."""

    def to_markdown(self, doc: dict[str, Any]) -> str:
        """The document as Markdown a person reads."""
        ...

    def to_html(self, doc: dict[str, Any]) -> str:
        """The document as a self-contained print page (see `html_page`), for the PDF."""
        ...

    def filename(self, doc: dict[str, Any], fmt: str) -> str:
        """The download's name, e.g. `duet-tea-or-coffee.md` (made safe again by `render`)."""
        ...


@dataclass(frozen=True)
class Export:
    """A rendered download."""

    content: bytes
    media_type: str
    filename: str

    @property
    def disposition(self) -> str:
        """The `Content-Disposition` header value."""
        return content_disposition(self.filename)


async def render(exporter: Exporter, doc: dict[str, Any], fmt: str) -> Export:
    """The document in `fmt` (md, json or pdf) as bytes with its media type and file name."""
    if fmt not in FORMATS:
        raise BadInput(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    if fmt == "pdf":
        content = await asyncio.to_thread(to_pdf, exporter, doc)  # seconds of CPU: off the event loop
    else:
        content = (to_json(doc) if fmt == "json" else exporter.to_markdown(doc)).encode()
    return Export(content=content, media_type=MEDIA_TYPES[fmt], filename=exporter.filename(doc, fmt))


def to_json(doc: dict[str, Any]) -> str:
    """The document as readable JSON, ending in a newline."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def to_pdf(exporter: Exporter, doc: dict[str, Any]) -> bytes:
    """The kind's print page as a PDF with real text; blocking, so run it in a worker thread."""
    return html_to_pdf(exporter.to_html(doc))


def html_page(title: str, parts: list[str], css: str = "") -> str:
    """A self-contained print page: the shared page and code styles, then the kind's own."""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{PAGE_CSS}{code_css()}{css}</style></head><body>{''.join(parts)}</body></html>")


def slug(text: str) -> str:
    """An ASCII file-name piece from a title: `Tea or coffee?` → `tea-or-coffee` (may be empty)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:SLUG_CHARS].rstrip("-")


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



def iso(value: datetime) -> str:
    """ISO 8601 with an explicit UTC offset (SQLite hands back naive datetimes, stored as UTC)."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def human_time(iso: str) -> str:
    """`2025-06-01 14:03 UTC` from an ISO timestamp."""
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")




def quote(text: str) -> str:
    """Text as a Markdown blockquote."""
    return "\n".join(f"> {line}".rstrip() for line in text.splitlines() or [""])



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


def run_header(run: Run, document_format: str) -> dict[str, Any]:
    """The fields every run document starts with: what it is, which run, how it ended, what it used."""
    return {"format": document_format, "version": 1, "exported_at": iso(datetime.now(UTC)),
            "id": run.id, "trace_id": run.trace_id, "kind": run.kind, "status": run.status,
            "started_at": iso(run.started_at), "finished_at": iso(run.finished_at) if run.finished_at else None,
            "totals": {"input_tokens": run.input_tokens, "output_tokens": run.output_tokens,
                       "cost_usd": run.cost_usd}}
