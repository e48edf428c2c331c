"""Start-up recovery: runs a crash left `running` become `interrupted`, partial output kept.

A crash (kill -9, power loss) leaves a run's stored events but not its result: the run's kind rebuilds
the result from the events (a chat reply's text, a duet's turns, a pipeline's steps; see core/kinds.py),
usage is summed, and a final `done` event is stored so a client replaying the run sees it end.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_
from sqlmodel import Session, col, select

from storage import runs as run_repo
from storage.models import Message, Run, utcnow

if TYPE_CHECKING:
    from services.core.kinds import Registry


def recover_interrupted(session: Session, *, kinds: Registry) -> int:
    """At start-up of a single process: every run left `running` was this process's; recover them all."""
    count = len(recover_runs(session, list(session.exec(select(Run).where(col(Run.status) == "running"))), kinds))
    # A message whose run never got stored (crash between the two writes).
    for msg in session.exec(select(Message).where(col(Message.status) == "running")):
        msg.status = "interrupted"
        session.add(msg)
    return count


def recover_expired(session: Session, *, kinds: Registry, now: datetime) -> list[tuple[str, int]]:
    """Replica mode: recover the running runs whose owner stopped renewing their lease (or never had one).

    Rows are locked and locked ones skipped, so two replicas reaping at once recover each run once. Returns
    (run id, seq of its `done`) for each, so their followers can be told.
    """
    expired = (select(Run).where(col(Run.status) == "running",
                                 or_(col(Run.lease_until).is_(None), col(Run.lease_until) < now))
               .with_for_update(skip_locked=True))
    return recover_runs(session, list(session.exec(expired)), kinds)


def recover_runs(session: Session, runs: list[Run], kinds: Registry) -> list[tuple[str, int]]:
    """Mark these runs interrupted and rebuild their partial output from stored events, each by its kind."""
    done: list[tuple[str, int]] = []
    for run in runs:
        events = run_repo.load_events(session, run_id=run.id)
        text = streamed_text(events)
        run.status = "interrupted"
        run.finished_at = utcnow()
        run.input_tokens, run.output_tokens, run.cost_usd = _usage(events)
        if not run.result and run.kind in kinds:  # a kind this version does not know keeps what it has
            run.result = kinds.get(run.kind).recover(run, events)
        session.add(run)
        seq = next((e["seq"] for e in events if e["type"] == "done"), 0)
        if not seq:
            seq = events[-1]["seq"] + 1 if events else 1
            run_repo.append_events(session, run_id=run.id, events=[
                {"seq": seq, "type": "done", "data": {"status": "interrupted", "run_id": run.id}}])
        for msg in session.exec(select(Message).where(Message.run_id == run.id,
                                                      col(Message.status) == "running")):
            msg.content = text
            msg.status = "interrupted"
            session.add(msg)
        done.append((run.id, seq))
    return done


def _usage(events: list[dict[str, Any]]) -> tuple[int, int, float]:
    """Tokens and cost of the usage events that were stored."""
    usage = [e["data"] for e in events if e["type"] == "usage"]
    return (sum(int(u.get("input_tokens", 0)) for u in usage), sum(int(u.get("output_tokens", 0)) for u in usage),
            sum(float(u.get("cost_usd", 0.0)) for u in usage))


def streamed_text(events: list[dict[str, Any]]) -> str:
    """The text the run's stored deltas add up to."""
    return "".join(e["data"]["delta"] for e in events if e["type"] == "text.delta")
