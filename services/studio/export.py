"""A Studio generation run as a file: its brief and the deliverables it drafted, as its envelope says.

One deliverable's approved text has its own export (StudioService.export); this is the run's.
"""

from __future__ import annotations

from html import escape
from typing import Any

from services.core.runs import ActiveRun
from services.core.usage import usage_text
from services.export.formats import html_page, quote, render_markdown_html, run_header, slug
from services.studio.service import StudioBody
from storage.models import Run


def document(run: Run, *, active: ActiveRun | None = None) -> dict[str, Any]:
    """The run as a JSON-ready dict (a running one exports the deliverables drafted so far)."""
    body = active.body if active is not None else None
    envelope = run.result or ({"status": "RUNNING", "deliverables": [d.model_dump(mode="json") for d in body.made]}
                              if isinstance(body, StudioBody) else {})
    return {**run_header(run, "lantern.deliverables-run"), "module": run.config.get("module"),
            "brief": run.config.get("brief") or {}, "chain": run.config.get("chain") or [],
            "envelope": envelope, "error": run.error}


def to_markdown(doc: dict[str, Any]) -> str:
    """The brief, then each deliverable's title, text and hashtags."""
    out = [f"# {_title(doc)}", "", f"_{_meta(doc)}_", "", "## Brief", ""]
    out += [f"- {key}: {value}" for key, value in doc["brief"].items() if value] + [""]
    for item in doc["envelope"].get("deliverables") or []:
        out += [f"## {item['title']} ({item['kind']}, {item['platform']})", "", item["content_markdown"].rstrip(), ""]
        if item.get("hashtags"):
            out += [" ".join(f"#{tag.lstrip('#')}" for tag in item["hashtags"]), ""]
    if error := _error(doc):
        out += [quote(f"Error: {error}"), ""]
    return "\n".join(out).rstrip("\n") + "\n"


def to_html(doc: dict[str, Any]) -> str:
    """The print page: brief escaped, deliverables rendered as Markdown with raw HTML escaped."""
    parts = [f"<h1>{escape(_title(doc))}</h1>", f'<p class="meta">{escape(_meta(doc))}</p>', "<ul>"]
    parts += [f"<li>{escape(str(key))}: {escape(str(value))}</li>" for key, value in doc["brief"].items() if value]
    parts.append("</ul>")
    for item in doc["envelope"].get("deliverables") or []:
        parts.append(f"<h2>{escape(item['title'])} ({escape(item['kind'])}, {escape(item['platform'])})</h2>"
                     f'<div class="md">{render_markdown_html(item["content_markdown"])}</div>')
        if item.get("hashtags"):
            parts.append(f'<p class="usage">{escape(" ".join("#" + t.lstrip("#") for t in item["hashtags"]))}</p>')
    if error := _error(doc):
        parts.append(f'<p class="error">Error: {escape(error)}</p>')
    return html_page(_title(doc), parts)


def filename(doc: dict[str, Any], fmt: str) -> str:
    """`studio-<module>-<brand>.<fmt>`."""
    stem = slug(f"{doc.get('module') or ''} {doc['brief'].get('brand') or ''}")
    return f"studio-{stem}.{fmt}" if stem else f"studio.{fmt}"


def _title(doc: dict[str, Any]) -> str:
    """`Studio: launch · Lumen`."""
    brand = doc["brief"].get("brand")
    return f"Studio: {doc.get('module') or 'deliverables'}" + (f" · {brand}" if brand else "")


def _meta(doc: dict[str, Any]) -> str:
    """Envelope status, start and usage on one line."""
    totals = doc["totals"]
    status = doc["envelope"].get("status") or doc["status"]
    return (f"{status} · started {doc['started_at']} · "
            f"{usage_text(totals['input_tokens'], totals['output_tokens'], totals['cost_usd'])}")


def _error(doc: dict[str, Any]) -> str:
    """Why the run produced nothing, if it did not."""
    error = doc["envelope"].get("error") or {}
    return str(error.get("message") or doc.get("error") or "")
