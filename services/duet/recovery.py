"""A duet a crash cut short: its turns rebuilt from the stored events, the last one partial."""

from __future__ import annotations

from typing import Any

from storage.models import Run


def recover(run: Run, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The result the duet would have stored, as far as its events tell (a continuation's earlier changes too:
    its config carries them; its earlier turns stay in the runs it continued)."""
    earlier = run.config.get("conversation") or {}
    return {"topic": run.config.get("topic", ""), "agents": run.config.get("agents", []),
            "turns": _duet_turns(run, events), "changes": list(earlier.get("changes") or [])}


def _duet_turns(run: Run, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Turns from labelled text deltas and `turn.finished` events; the last one partial."""
    agents = run.config.get("agents") or []
    index = {a.get("name"): i for i, a in enumerate(agents)}
    turns: list[dict[str, Any]] = []
    # A continued duet's earlier turns live in the runs it continued: numbering goes on from them.
    first = int(((run.config.get("conversation") or {}).get("totals") or {}).get("turns") or 0)
    current: dict[str, Any] | None = None
    for e in events:
        data = e["data"]
        if e["type"] == "text.delta":
            if current is None:
                name = data.get("agent") or ""
                i = index.get(name, len(turns) % 2)
                current = {"turn": first + len(turns), "agent_index": i, "agent": name,
                           "model": agents[i].get("model") if i < len(agents) else None, "content": "",
                           "status": "interrupted", "seconds": 0.0, "input_tokens": 0, "output_tokens": 0,
                           "cost_usd": 0.0}
                turns.append(current)
            current["content"] += data.get("delta", "")
        elif e["type"] == "usage" and current is not None:
            current.update(input_tokens=data.get("input_tokens", 0), output_tokens=data.get("output_tokens", 0),
                           cost_usd=data.get("cost_usd", 0.0))
        elif e["type"] == "turn.finished" and current is not None:
            current.update(turn=data.get("turn", current["turn"]), content=data.get("content", current["content"]),
                           status="completed")
            current = None
    return turns
