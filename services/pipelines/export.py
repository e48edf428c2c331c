"""Pipeline run export: a lossless JSON trace, and Markdown / PDF a person can read step by step."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from services.core.runs import ActiveRun
from services.core.usage import usage_text
from services.export.formats import html_page, iso, render_markdown_html
from services.pipelines.engine import PipelineBody
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


def to_markdown(doc: dict[str, Any]) -> str:
    """A trace a person can read: each step's exact prompt and response, then the outcome."""
    lines = [f"# Pipeline {doc['pipeline']}: {doc['topic']}", "",
             f"Status: {doc['status']} · started {doc['started_at']} · "
             f"{usage_text(**doc['totals'])}", ""]
    lines += [f"- {role}: {model}" for role, model in doc["models"].items()] + [""]
    for step in doc["steps"]:
        mark = "" if step["ok"] else f" — {step['status']}"
        lines += [f"## {step['index'] + 1}. {step['title']}{mark}", "",
                  f"{step['model']} · {_step_usage(step)}", "", "**Prompt**", "", _fence(step["prompt"]), "",
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


def to_html(doc: dict[str, Any]) -> str:
    """The Markdown trace as a print page (code highlighted, raw HTML escaped)."""
    return html_page(str(doc["topic"]), [render_markdown_html(to_markdown(doc))])


def filename(doc: dict[str, Any], fmt: str) -> str:
    """pipeline-<name>-<short id>.<fmt>."""
    return f"pipeline-{doc['pipeline']}-{doc['id'][:8]}.{fmt}"


def _step_usage(step: dict[str, Any]) -> str:
    """A step's tokens, time and cost."""
    return usage_text(step["input_tokens"] or 0, step["output_tokens"] or 0, step["cost_usd"] or 0.0,
                      seconds=step["seconds"] or 0.0)


def _fence(text: str) -> str:
    """Text in a code fence long enough not to be closed by its content."""
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}\n{text}\n{ticks}"
