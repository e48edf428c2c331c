"""Start-up recovery: runs a crash left `running` become `interrupted`, partial output kept.

A crash (kill -9, power loss) leaves a run's stored events but not its result: the result is
rebuilt from the events (a chat reply's text, a duet's turns, a pipeline's steps), usage is
summed, and a final `done` event is stored so a client replaying the run sees it end.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from storage import runs as run_repo
from storage.models import Message, Run, utcnow


def recover_interrupted(session: Session) -> int:
    """Mark orphaned runs interrupted and rebuild their partial output from stored events."""
    orphans = list(session.exec(select(Run).where(col(Run.status) == "running")))
    for run in orphans:
        events = run_repo.load_events(session, run_id=run.id)
        text = "".join(e["data"]["delta"] for e in events if e["type"] == "text.delta")
        run.status = "interrupted"
        run.finished_at = utcnow()
        run.input_tokens, run.output_tokens, run.cost_usd = _usage(events)
        if not run.result:
            run.result = _result(run, events, text)
        session.add(run)
        if not any(e["type"] == "done" for e in events):
            seq = events[-1]["seq"] + 1 if events else 1
            run_repo.append_events(session, run_id=run.id, events=[
                {"seq": seq, "type": "done", "data": {"status": "interrupted", "run_id": run.id}}])
        for msg in session.exec(select(Message).where(Message.run_id == run.id,
                                                      col(Message.status) == "running")):
            msg.content = text
            msg.status = "interrupted"
            session.add(msg)
    # A message whose run never got stored (crash between the two writes).
    for msg in session.exec(select(Message).where(col(Message.status) == "running")):
        msg.status = "interrupted"
        session.add(msg)
    return len(orphans)


def _usage(events: list[dict[str, Any]]) -> tuple[int, int, float]:
    """Tokens and cost of the usage events that were stored."""
    usage = [e["data"] for e in events if e["type"] == "usage"]
    return (sum(int(u.get("input_tokens", 0)) for u in usage), sum(int(u.get("output_tokens", 0)) for u in usage),
            sum(float(u.get("cost_usd", 0.0)) for u in usage))


def _result(run: Run, events: list[dict[str, Any]], text: str) -> dict[str, Any]:
    """The result the run would have stored, as far as its events tell."""
    if run.kind == "duet":
        return {"topic": run.config.get("topic", ""), "agents": run.config.get("agents", []),
                "turns": _duet_turns(run, events), "changes": []}
    if run.kind == "pipeline":
        return {"pipeline": run.config.get("pipeline"), "topic": run.config.get("topic"),
                "steps": _pipeline_steps(events),
                "outcome": {"ok": False, "reason": "interrupted: the server stopped during the run", "result": None}}
    if run.kind == "chat":
        return {"message": {"role": "assistant", "content": text}}
    return {}


def _duet_turns(run: Run, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Turns from labelled text deltas and `turn.finished` events; the last one partial."""
    agents = run.config.get("agents") or []
    index = {a.get("name"): i for i, a in enumerate(agents)}
    turns: list[dict[str, Any]] = []
    first = 0  # a continued duet's earlier turns live in the run it continued; `turn.finished` says the number
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
