"""Start-up recovery: runs a crash left `running` become `interrupted`, partial text kept."""

from __future__ import annotations

from sqlmodel import Session, col, select

from storage import runs as run_repo
from storage.models import Message, Run, utcnow


def recover_interrupted(session: Session) -> int:
    """Mark orphaned runs interrupted and rebuild their messages' text from stored events."""
    orphans = list(session.exec(select(Run).where(col(Run.status) == "running")))
    for run in orphans:
        run.status = "interrupted"
        run.finished_at = utcnow()
        session.add(run)
        for msg in session.exec(select(Message).where(Message.run_id == run.id,
                                                      col(Message.status) == "running")):
            events = run_repo.load_events(session, run_id=run.id)
            msg.content = "".join(e["data"]["delta"] for e in events if e["type"] == "text.delta")
            msg.status = "interrupted"
            session.add(msg)
    # A message whose run never got stored (crash between the two writes).
    for msg in session.exec(select(Message).where(col(Message.status) == "running")):
        msg.status = "interrupted"
        session.add(msg)
    return len(orphans)
