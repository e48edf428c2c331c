"""Repository functions for conversations and messages (keyword-only, session first)."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, column, func, literal_column, table, text, union
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, delete, select

from storage.models import LOCAL_USER_ID, Conversation, Message, User, utcnow


class Leaf:
    """Marker: attach to the conversation's current leaf."""


LEAF = Leaf()
MESSAGE_FTS = table("message_fts", column("rowid", Integer))  # SQLite's FTS5 index over message.content


def ensure_user(session: Session, *, user_id: str = LOCAL_USER_ID, name: str = "local") -> User:
    """The user with this id, created on first use."""
    user = session.get(User, user_id)
    if user is None:
        # The first requests can arrive together: let the database keep one row instead of raising.
        insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
        session.execute(insert(User).values(id=user_id, name=name, role="admin", created_at=utcnow())
                        .on_conflict_do_nothing())
        user = session.get(User, user_id)
        if user is None:
            raise RuntimeError(f"cannot create user {user_id}: the name {name!r} belongs to another user")
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
                parent_id: str | Leaf | None = LEAF, **fields: Any) -> Message:
    """Add a message under `parent_id` (default: the current leaf); it becomes the new leaf."""
    conv = session.get(Conversation, conversation_id)
    if conv is None:
        raise LookupError(f"no conversation {conversation_id}")
    last = session.exec(
        select(func.max(Message.position)).where(Message.conversation_id == conversation_id)
    ).one()
    parent = conv.leaf_id if isinstance(parent_id, Leaf) else parent_id
    msg = Message(conversation_id=conversation_id, role=role, content=content, parent_id=parent,
                  position=(last if last is not None else -1) + 1, **fields)
    session.add(msg)
    conv.leaf_id = msg.id
    conv.updated_at = utcnow()
    session.add(conv)
    session.flush()
    return msg


@dataclass(frozen=True, slots=True)
class PathEntry:
    """A message on the current branch, with its place among its siblings."""

    message: Message
    index: int
    siblings: list[str]


def current_path(session: Session, *, conversation_id: str) -> list[PathEntry]:
    """The messages from the root to the conversation's current leaf, with sibling info."""
    conv = session.get(Conversation, conversation_id)
    messages = list_messages(session, conversation_id=conversation_id)
    by_id = {m.id: m for m in messages}
    children: dict[str | None, list[Message]] = defaultdict(list)
    for m in messages:
        children[m.parent_id].append(m)
    chain: list[Message] = []
    node = by_id.get(conv.leaf_id) if conv and conv.leaf_id else None
    while node is not None:
        chain.append(node)
        node = by_id.get(node.parent_id) if node.parent_id else None
    entries = []
    for m in reversed(chain):
        sibling_ids = [s.id for s in children[m.parent_id]]
        entries.append(PathEntry(message=m, index=sibling_ids.index(m.id), siblings=sibling_ids))
    return entries


def select_branch(session: Session, *, conversation_id: str, user_id: str, message_id: str) -> bool:
    """Make the branch through `message_id` current (down to its newest leaf)."""
    conv = get_conversation(session, conversation_id=conversation_id, user_id=user_id)
    target = session.get(Message, message_id)
    if conv is None or target is None or target.conversation_id != conversation_id:
        return False
    while (child := session.exec(select(Message).where(Message.parent_id == target.id)
                                 .order_by(col(Message.position).desc())).first()) is not None:
        target = child
    conv.leaf_id = target.id
    session.add(conv)
    return True


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
    where: list[Any] = [Conversation.user_id == user_id]
    newest = col(Conversation.updated_at).desc()
    if q.strip():
        # The search runs once: the total rides along the page as a window count.
        where.append(col(Conversation.id).in_(_search(session, user_id=user_id, q=q)))
        rows = session.exec(select(Conversation, func.count().over()).where(*where)
                            .order_by(newest).limit(limit).offset(offset)).all()
        page = [conv for conv, _n in rows]
        total = rows[0][1] if rows else None
    else:
        page = list(session.exec(select(Conversation).where(*where).order_by(newest).limit(limit).offset(offset)))
        total = None if len(page) == limit or offset else len(page)
    if total is None:
        total = session.exec(select(func.count()).select_from(Conversation).where(*where)).one()
    # Count messages for this page only: a count over the whole table would grow with history.
    rows_n: Any = session.exec(select(Message.conversation_id, func.count())
                               .where(col(Message.conversation_id).in_([c.id for c in page]))
                               .group_by(col(Message.conversation_id))) if page else []
    counts = {conversation_id: n for conversation_id, n in rows_n}
    items = [{"id": c.id, "title": c.title, "updated_at": c.updated_at, "model": c.model,
              "message_count": counts.get(c.id, 0)} for c in page]
    return items, total


def _search(session: Session, *, user_id: str, q: str) -> Any:
    """Ids of the user's conversations whose title contains `q` or whose messages match it.

    A UNION, not `title LIKE … OR id IN (…)`: PostgreSQL cannot hash a large `IN` under `OR`
    and rescans the subquery per conversation.
    """
    title_hit = select(Conversation.id).where(Conversation.user_id == user_id,
                                              func.lower(Conversation.title).like(f"%{q.strip().lower()}%"))
    message_hit = _message_search(session, q)
    return title_hit if message_hit is None else union(title_hit, message_hit)


def _message_search(session: Session, q: str) -> Any:
    """Conversation ids whose messages contain every word of `q` (as prefixes), via the full-text index."""
    words = re.findall(r"\w+", q.lower())[:8]
    if not words:
        return None
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        # A join on rowid: faster than `rowid IN (SELECT rowid FROM message_fts …)`.
        match = " ".join(f'"{w}"*' for w in words)
        on_rowid = MESSAGE_FTS.c.rowid == literal_column("message.rowid")
        return select(Message.conversation_id).join(MESSAGE_FTS, on_rowid) \
            .where(text("message_fts MATCH :match").bindparams(match=match))
    if dialect == "postgresql":
        # 'simple' inline, not a bound parameter: a prepared (generic) plan must still match the
        # expression index on to_tsvector('simple', content), or every search scans every message.
        query = " & ".join(f"{w}:*" for w in words)
        simple: Any = literal_column("'simple'")
        return select(Message.conversation_id).where(
            func.to_tsvector(simple, Message.content).op("@@")(func.to_tsquery(simple, query)))
    like = [func.lower(Message.content).like(f"%{w}%") for w in words]
    return select(Message.conversation_id).where(*like)


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
