"""Repository functions for logins: browser sessions and personal API tokens (hashes only)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, delete, select

from storage.models import ApiToken, AuthEpoch, AuthSession, User, utcnow

# last_used_at is written at most this often per token: a busy script must not turn every request into a write.
LAST_USED_GRANULARITY = timedelta(minutes=1)


def aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were stored as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def get_user(session: Session, *, user_id: str) -> User | None:
    """An account by id."""
    return session.get(User, user_id)


def create_session(session: Session, *, token_hash: str, user_id: str, expires_at: datetime) -> None:
    """Record a login; expired ones are swept at the same time."""
    session.exec(delete(AuthSession).where(col(AuthSession.expires_at) < utcnow()))
    session.add(AuthSession(id=token_hash, user_id=user_id, expires_at=expires_at))


def find_session(session: Session, *, token_hash: str) -> tuple[AuthSession, User] | None:
    """A live login and its (still enabled) user."""
    row = session.get(AuthSession, token_hash)
    if row is None or aware(row.expires_at) <= utcnow():
        return None
    user = session.get(User, row.user_id)
    if user is None or user.password_hash is None:
        return None
    return row, user


def live_sessions(session: Session, *, token_hashes: Iterable[str]) -> set[str]:
    """Which of these logins still hold (unexpired, user enabled)."""
    wanted = list(token_hashes)
    if not wanted:
        return set()
    rows = session.exec(select(AuthSession.id, AuthSession.expires_at).join(User, col(User.id) == AuthSession.user_id)
                        .where(col(AuthSession.id).in_(wanted), col(User.password_hash).is_not(None)))
    now = utcnow()
    return {row_id for row_id, expires in rows if aware(expires) > now}


def end_session(session: Session, *, token_hash: str) -> None:
    """Forget a login (logout)."""
    row = session.get(AuthSession, token_hash)
    if row is not None:
        session.delete(row)
    bump_epoch(session)


def end_user_credentials(session: Session, *, user_id: str) -> None:
    """Log a user out everywhere and revoke their API tokens (password change, removal)."""
    session.exec(delete(AuthSession).where(col(AuthSession.user_id) == user_id))
    for token in session.exec(select(ApiToken).where(ApiToken.user_id == user_id, col(ApiToken.revoked_at).is_(None))):
        token.revoked_at = utcnow()
        session.add(token)
    bump_epoch(session)


def auth_epoch(session: Session) -> int:
    """The current revocation counter (0 before anything was ever revoked)."""
    row = session.get(AuthEpoch, 1)
    return row.value if row else 0


def bump_epoch(session: Session) -> None:
    """Tell every process that some login or token ended: they drop their caches and re-check open pages."""
    row = session.get(AuthEpoch, 1) or AuthEpoch(id=1, value=0)
    row.value += 1
    session.add(row)


def add_token(session: Session, *, user_id: str, name: str, token_hash: str, prefix: str, record_calls: bool = True,
              expires_at: datetime | None = None) -> ApiToken:
    """Store a new API token's hash."""
    token = ApiToken(user_id=user_id, name=name, token_hash=token_hash, prefix=prefix, expires_at=expires_at,
                     record_calls=record_calls)
    session.add(token)
    session.flush()
    session.refresh(token)
    return token


def list_tokens(session: Session, *, user_id: str) -> list[ApiToken]:
    """A user's tokens, newest first, revoked ones included (marked)."""
    return list(session.exec(select(ApiToken).where(ApiToken.user_id == user_id)
                             .order_by(col(ApiToken.created_at).desc())))


def revoke_token(session: Session, *, user_id: str, token_id: str) -> bool:
    """Revoke one of the user's tokens; False when the user has no such live token."""
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user_id or token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    session.add(token)
    bump_epoch(session)
    return True


def use_token(session: Session, *, token_hash: str) -> tuple[User, datetime | None, bool] | None:
    """The enabled user owning a live token, when the token expires and whether its calls are recorded.

    Notes when it was last used."""
    token = session.exec(select(ApiToken).where(ApiToken.token_hash == token_hash)).first()
    now = utcnow()
    if token is None or token.revoked_at is not None or (token.expires_at and aware(token.expires_at) <= now):
        return None
    user = session.get(User, token.user_id)
    if user is None or user.password_hash is None:
        return None
    if token.last_used_at is None or aware(token.last_used_at) + LAST_USED_GRANULARITY <= now:
        token.last_used_at = now
        session.add(token)
    return user, aware(token.expires_at) if token.expires_at else None, token.record_calls
