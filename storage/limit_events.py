"""Repository functions for the rate-limit and login-throttle events replicas share."""

from __future__ import annotations

from sqlmodel import Session, col, delete, select

from storage.models import LimitEvent


def add_limit_event(session: Session, *, scope: str, key: str, kind: str, at: float) -> None:
    """Record one counted event."""
    session.add(LimitEvent(scope=scope, key=key, kind=kind, at=at))


def limit_events_since(session: Session, *, since: float) -> list[LimitEvent]:
    """Every event counted since `since` (seconds since the epoch), oldest first."""
    return list(session.exec(select(LimitEvent).where(col(LimitEvent.at) >= since).order_by(col(LimitEvent.id))))


def prune_limit_events(session: Session, *, before: float) -> None:
    """Forget events older than any limit looks back."""
    session.exec(delete(LimitEvent).where(col(LimitEvent.at) < before))
