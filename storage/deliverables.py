"""Repository functions for deliverables and their versions."""

from __future__ import annotations

from sqlmodel import Session, col, select

from storage.models import Deliverable, DeliverableVersion


def add_deliverable(session: Session, *, deliverable: Deliverable, content: str) -> Deliverable:
    """Store a generated deliverable with its first version."""
    session.add(deliverable)
    session.flush()
    session.add(DeliverableVersion(deliverable_id=deliverable.id, version=1, content_markdown=content))
    return deliverable


def get_deliverable(session: Session, *, deliverable_id: str, user_id: str) -> Deliverable | None:
    """The user's deliverable, or None."""
    found = session.get(Deliverable, deliverable_id)
    return found if found is not None and found.user_id == user_id else None


def versions(session: Session, *, deliverable_id: str) -> list[DeliverableVersion]:
    """All versions, oldest first."""
    return list(session.exec(select(DeliverableVersion).where(DeliverableVersion.deliverable_id == deliverable_id)
                             .order_by(col(DeliverableVersion.version))))


def add_version(session: Session, *, deliverable_id: str, content: str, note: str) -> DeliverableVersion:
    """A new version after the latest."""
    latest = versions(session, deliverable_id=deliverable_id)
    version = DeliverableVersion(deliverable_id=deliverable_id, version=(latest[-1].version if latest else 0) + 1,
                                 content_markdown=content, note=note)
    session.add(version)
    session.flush()
    return version


def for_run(session: Session, *, run_id: str, user_id: str) -> list[Deliverable]:
    """A generation's deliverables in order of creation."""
    return list(session.exec(select(Deliverable).where(Deliverable.run_id == run_id, Deliverable.user_id == user_id)
                             .order_by(col(Deliverable.created_at))))
