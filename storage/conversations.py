"""Repository functions for conversations and messages (keyword-only, session first)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_
from sqlmodel import Session, col, delete, select

from storage.models import LOCAL_USER_ID, Conversation, Message, User, utcnow


def ensure_user(session: Session, *, user_id: str = LOCAL_USER_ID, name: str = "local") -> User:
    """The user with this id, created on first use."""
    user = session.get(User, user_id)
    if user is None:
        user = User(id=user_id, name=name, role="admin")
        session.add(user)
        session.flush()
    return user


def create_conversation(session: Session, *, user_id: str, title: str = "New chat",
                        model: str | None = None, system_prompt: str | None = None,
                        temperature: float | None = None) -> Conversation:
    """A new empty conversation."""
    conv = Conversation(user_id=user_id, title=title, model=model,
                        system_prompt=system_prompt, temperature=temperature)
    session.add(conv)
    session.flush()
    return conv


def get_conversation(session: Session, *, conversation_id: str, user_id: str) -> Conversation | None:
    """The user's conversation, or None (other users' conversations do not exist for them)."""
    conv = session.get(Conversation, conversation_id)
    return conv if conv is not None and conv.user_id == user_id else None


def list_messages(session: Session, *, conversation_id: str) -> list[Message]:
    """Messages in order."""
    stmt = select(Message).where(Message.conversation_id == conversation_id).order_by(col(Message.position))
    return list(session.exec(stmt))


def add_message(session: Session, *, conversation_id: str, role: str, content: str,
                **fields: Any) -> Message:
    """Append a message at the end of the conversation and touch its timestamp."""
    last = session.exec(
        select(func.max(Message.position)).where(Message.conversation_id == conversation_id)
    ).one()
    msg = Message(conversation_id=conversation_id, role=role, content=content,
                  position=(last if last is not None else -1) + 1, **fields)
    session.add(msg)
    conv = session.get(Conversation, conversation_id)
    if conv is not None:
        conv.updated_at = utcnow()
        session.add(conv)
    session.flush()
    return msg


def update_message(session: Session, *, message_id: str, **fields: Any) -> Message | None:
    """Set fields of a message (final content, status, usage)."""
    msg = session.get(Message, message_id)
    if msg is None:
        return None
    for key, value in fields.items():
        setattr(msg, key, value)
    session.add(msg)
    session.flush()
    return msg


def list_conversations(session: Session, *, user_id: str, q: str = "", limit: int = 50,
                       offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """A page of the user's conversations, newest first, with message counts, and the total."""
    counts = (select(Message.conversation_id, func.count().label("n"))
              .group_by(col(Message.conversation_id)).subquery())
    where: list[Any] = [Conversation.user_id == user_id]
    if q:
        like = f"%{q.lower()}%"
        hit = select(Message.conversation_id).where(func.lower(Message.content).like(like))
        where.append(or_(func.lower(Conversation.title).like(like), col(Conversation.id).in_(hit)))
    total = session.exec(select(func.count()).select_from(Conversation).where(*where)).one()
    stmt = (select(Conversation, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.conversation_id == Conversation.id)
            .where(*where).order_by(col(Conversation.updated_at).desc()).limit(limit).offset(offset))
    items = [{"id": c.id, "title": c.title, "updated_at": c.updated_at, "model": c.model,
              "message_count": n} for c, n in session.exec(stmt)]
    return items, total


def rename_conversation(session: Session, *, conversation_id: str, user_id: str, title: str) -> bool:
    """Set a conversation's title; False when it is not the user's."""
    conv = get_conversation(session, conversation_id=conversation_id, user_id=user_id)
    if conv is None:
        return False
    conv.title = title
    session.add(conv)
    return True


def delete_conversation(session: Session, *, conversation_id: str, user_id: str) -> bool:
    """Delete a conversation and its messages; False when it is not the user's."""
    conv = get_conversation(session, conversation_id=conversation_id, user_id=user_id)
    if conv is None:
        return False
    session.exec(delete(Message).where(col(Message.conversation_id) == conversation_id))
    session.delete(conv)
    return True
