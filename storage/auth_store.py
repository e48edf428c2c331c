"""Repository functions for logins: browser sessions and personal API tokens (hashes only)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session, col, delete, select

from storage.models import ApiToken, AuthSession, User, utcnow


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


def end_session(session: Session, *, token_hash: str) -> None:
    """Forget a login (logout)."""
    row = session.get(AuthSession, token_hash)
    if row is not None:
        session.delete(row)


def end_user_sessions(session: Session, *, user_id: str) -> None:
    """Log a user out everywhere (password change, removal)."""
    session.exec(delete(AuthSession).where(col(AuthSession.user_id) == user_id))


def add_token(session: Session, *, user_id: str, name: str, token_hash: str, prefix: str) -> ApiToken:
    """Store a new API token's hash."""
    token = ApiToken(user_id=user_id, name=name, token_hash=token_hash, prefix=prefix)
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
    return True


def use_token(session: Session, *, token_hash: str) -> User | None:
    """The enabled user owning a live token, noting when it was last used."""
    token = session.exec(select(ApiToken).where(ApiToken.token_hash == token_hash)).first()
    if token is None or token.revoked_at is not None:
        return None
    user = session.get(User, token.user_id)
    if user is None or user.password_hash is None:
        return None
    token.last_used_at = utcnow()
    session.add(token)
    return user
