"""A pipeline run a crash cut short: its steps rebuilt from the stored events, the last one partial."""

from __future__ import annotations

from typing import Any

from storage.models import Run


def recover(run: Run, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The result the pipeline would have stored, as far as its events tell."""
    return {"pipeline": run.config.get("pipeline"), "topic": run.config.get("topic"),
            "steps": _pipeline_steps(events),
            "outcome": {"ok": False, "reason": "interrupted: the server stopped during the run", "result": None}}


def _pipeline_steps(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Step records from `step.started`, text deltas and `step.finished`; the last one partial."""
    steps: dict[int, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for e in events:
        data = e["data"]
        if e["type"] == "step.started":
            current = {"index": data.get("index"), "step_id": None, "title": data.get("title"), "role": None,
                       "model": data.get("model"), "prompt": data.get("prompt"), "response": "", "ok": False,
                       "status": "interrupted", "error": None, "seconds": 0.0, "input_tokens": 0,
                       "output_tokens": 0, "cost_usd": 0.0, "parsed": None}
            steps[int(data.get("index", len(steps)))] = current
        elif e["type"] == "text.delta" and current is not None:
            current["response"] += data.get("delta", "")
        elif e["type"] == "step.finished" and current is not None:
            usage = data.get("usage") or {}
            current.update(ok=bool(data.get("ok")), response=data.get("response", current["response"]),
                           seconds=data.get("seconds", 0.0), error=data.get("error"),
                           status="completed" if data.get("ok") else "failed",
                           **{k: usage[k] for k in ("input_tokens", "output_tokens", "cost_usd") if k in usage})
            current = None
    return [steps[i] for i in sorted(steps)]
