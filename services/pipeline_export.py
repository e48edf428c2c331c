"""Pipeline run export: a lossless JSON trace, and Markdown / PDF a person can read step by step."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape
from typing import Any

from services.export import PAGE_CSS, html_to_pdf, iso, render_markdown_html
from services.pipeline import PipelineBody
from services.runs import ActiveRun
from storage.models import Run

STEP_FIELDS = ("index", "step_id", "title", "role", "model", "prompt", "response", "ok", "status", "error",
               "seconds", "input_tokens", "output_tokens", "cost_usd", "parsed")


def document(run: Run, *, active: ActiveRun | None = None) -> dict[str, Any]:
    """The run as a JSON-ready dict (a running run exports the steps so far)."""
    body = active.body if active is not None else None
    result = run.result or ({"steps": body.records, "outcome": body.outcome}
                            if isinstance(body, PipelineBody) else {})
    return {
        "format": "lantern.pipeline", "version": 1, "exported_at": datetime.now(UTC).isoformat(),
        "id": run.id, "trace_id": run.trace_id, "status": run.status,
        "started_at": iso(run.started_at), "finished_at": iso(run.finished_at) if run.finished_at else None,
        "pipeline": run.config.get("pipeline"), "topic": run.config.get("topic"),
        "models": run.config.get("models", {}), "max_attempts": run.config.get("max_attempts"),
        "definition": run.config.get("definition"),
        "steps": [{k: s.get(k) for k in STEP_FIELDS} for s in result.get("steps", [])],
        "outcome": result.get("outcome"), "error": run.error,
        "totals": {"input_tokens": run.input_tokens, "output_tokens": run.output_tokens, "cost_usd": run.cost_usd},
    }


def to_json(doc: dict[str, Any]) -> str:
    """Indented JSON."""
    return json.dumps(doc, indent=2, ensure_ascii=False)


def to_markdown(doc: dict[str, Any]) -> str:
    """A trace a person can read: each step's exact prompt and response, then the outcome."""
    lines = [f"# Pipeline {doc['pipeline']}: {doc['topic']}", "",
             f"Status: {doc['status']} · started {doc['started_at']} · "
             f"{doc['totals']['output_tokens']} output tokens · ${doc['totals']['cost_usd']:.4f}", ""]
    lines += [f"- {role}: {model}" for role, model in doc["models"].items()] + [""]
    for step in doc["steps"]:
        mark = "" if step["ok"] else f" — {step['status']}"
        lines += [f"## {step['index'] + 1}. {step['title']}{mark}", "",
                  f"{step['model']} · {step['seconds']:.1f} s · {step['input_tokens']} in / "
                  f"{step['output_tokens']} out tokens", "", "**Prompt**", "", _fence(step["prompt"]), "",
                  "**Response**", "", _fence(step["response"]), ""]
        if step["error"]:
            lines += [f"> Error: {step['error']}", ""]
    lines += ["## Outcome", "", *outcome_markdown(doc.get("outcome"), doc.get("error"))]
    return "\n".join(lines).rstrip() + "\n"


def outcome_markdown(outcome: dict[str, Any] | None, error: str | None = None) -> list[str]:
    """The final result: an assessment rendered for reading, else its JSON, else why there is none."""
    if not outcome:
        return [f"No result: {error or 'the run did not finish'}."]
    if not outcome.get("ok"):
        return [f"No result: {outcome.get('reason') or error}."]
    result = outcome.get("result")
    if isinstance(result, dict) and {"title", "code", "errors"} <= set(result):
        lines = [f"### {result['title']}", "", f"Difficulty: {result.get('difficulty', '?')}", "",
                 _fence(str(result["code"])), "", "Errors to find:", ""]
        lines += [f"- **{e.get('id', '?')}**: {e.get('description', '')}" for e in result["errors"]
                  if isinstance(e, dict)]
        return [*lines, ""]
    return [_fence(result if isinstance(result, str) else json.dumps(result, indent=2, ensure_ascii=False))]


def to_pdf(doc: dict[str, Any]) -> bytes:
    """The Markdown trace as a PDF with real text (blocking: run in a worker thread)."""
    body = render_markdown_html(to_markdown(doc))
    return html_to_pdf(f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
                       f"<title>{escape(str(doc['topic']))}</title><style>{PAGE_CSS}</style></head>"
                       f"<body>{body}</body></html>")


def filename(doc: dict[str, Any], fmt: str) -> str:
    """pipeline-<name>-<short id>.<fmt>."""
    return f"pipeline-{doc['pipeline']}-{doc['id'][:8]}.{fmt}"


def _fence(text: str) -> str:
    """Text in a code fence long enough not to be closed by its content."""
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}\n{text}\n{ticks}"
