"""Repository functions for user accounts (shared mode)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from storage.auth_store import end_user_credentials
from storage.models import User


def add_user(session: Session, *, name: str, password_hash: str, role: str = "member") -> User:
    """A new account; names are unique."""
    if session.exec(select(User).where(User.name == name)).first() is not None:
        raise ValueError(f"a user named '{name}' already exists")
    user = User(name=name, password_hash=password_hash, role=role)
    session.add(user)
    session.flush()
    return user


def list_users(session: Session) -> list[User]:
    """Accounts that can log in (the loopback `local` user has no password), by name."""
    return list(session.exec(select(User).where(col(User.password_hash).is_not(None)).order_by(col(User.name))))


def find_user(session: Session, *, name: str) -> User | None:
    """An account by name."""
    return session.exec(select(User).where(User.name == name)).first()


def set_password(session: Session, *, name: str, password_hash: str) -> bool:
    """Change a password; False when there is no such user."""
    user = find_user(session, name=name)
    if user is None:
        return False
    user.password_hash = password_hash
    session.add(user)
    end_user_credentials(session, user_id=user.id)  # a new password ends the old logins and tokens
    return True


def remove_user(session: Session, *, name: str) -> bool:
    """Disable an account (its data stays, owned by nobody who can log in); False if unknown."""
    user = find_user(session, name=name)
    if user is None or user.password_hash is None:
        return False
    user.password_hash = None
    session.add(user)
    end_user_credentials(session, user_id=user.id)
    return True
