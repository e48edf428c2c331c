"""Repository functions for conversations and messages (keyword-only, session first)."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, column, event, func, inspect, literal_column, table, text, union
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, delete, select

from storage.migrations import PG_CONVERSATION_WORDS, word_list
from storage.models import LOCAL_USER_ID, Conversation, Message, User, utcnow


class Leaf:
    """Marker: attach to the conversation's current leaf."""


LEAF = Leaf()
CONVERSATION_FTS = table("conversation_fts", column("rowid", Integer))  # SQLite: each conversation's words
SEARCH_WORDS: Any = literal_column("conversation.search_words")  # PostgreSQL: the same as a tsvector


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


def get_message(session: Session, *, message_id: str) -> Message | None:
    """One message by id."""
    return session.get(Message, message_id)


def list_conversations(session: Session, *, user_id: str, q: str = "", limit: int = 50,
                       offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """A page of the user's conversations, newest first, with message counts, and the total."""
    where: list[Any] = [Conversation.user_id == user_id]
    newest = col(Conversation.updated_at).desc()
    if q.strip():
        # The search runs once: the total rides along the page as a window count.
        where.append(col(Conversation.id).in_(_search(session, user_id=user_id, q=q)))
        # The total is exact (the API promises a total): with one index entry per conversation, counting
        # every match costs at most one row per conversation.
        pg = session.get_bind().dialect.name == "postgresql"
        if pg:
            # PostgreSQL costs a scan of `conversation` by its main pages only, not by the TOASTed
            # search_words it must decompress on every row (127 ms at 10,000 conversations against
            # 3 ms through the GIN index), so it prefers the scan; steer it to the index for this query.
            previous = session.execute(text("SELECT current_setting('enable_seqscan'), "
                                            "set_config('enable_seqscan', 'off', true)")).scalar()
        rows = session.exec(select(Conversation, func.count().over()).where(*where)
                            .order_by(newest).limit(limit).offset(offset)).all()
        if pg:
            session.execute(text("SELECT set_config('enable_seqscan', :v, true)"), {"v": previous})
        page = [conv for conv, _n in rows]
        # No row on the first page means no match: counting again would scan (unsteered) for nothing.
        total = rows[0][1] if rows else (0 if offset == 0 else None)
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
    """Conversation ids whose messages contain every word of `q` (as prefixes), via the conversation index.

    The index holds each conversation's distinct words, so the words of `q` must all occur in the
    conversation, not necessarily in one message; and the cost grows with matching conversations,
    not matching messages.
    """
    words = re.findall(r"\w+", q.lower())[:8]
    if not words:
        return None
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        # A join on rowid: faster than `rowid IN (SELECT rowid FROM conversation_fts …)`.
        match = " ".join(f'"{w}"*' for w in words)
        on_rowid = CONVERSATION_FTS.c.rowid == literal_column("conversation.rowid")
        return select(Conversation.id).join(CONVERSATION_FTS, on_rowid) \
            .where(text("conversation_fts MATCH :match").bindparams(match=match))
    if dialect == "postgresql":
        # 'simple' inline, not a bound parameter, so that a prepared (generic) plan keeps it constant.
        query = " & ".join(f"{w}:*" for w in words)
        simple: Any = literal_column("'simple'")
        return select(Conversation.id).where(SEARCH_WORDS.op("@@")(func.to_tsquery(simple, query)))
    like = [func.lower(Message.content).like(f"%{w}%") for w in words]
    return select(Message.conversation_id).where(*like)


# ---- keeping the conversation index current ---------------------------------------------------------

@event.listens_for(Session, "after_flush")
def _index_flushed_messages(session: Session, _context: Any) -> None:
    """Bring the conversation index up to date with the messages this flush wrote.

    Every ORM write of Message.content passes here (add_message, update_message, recovery): a new
    message's words are added to its conversation's entry; a changed or deleted message has the
    entry recomputed from all its conversation's messages (words may have gone), except when the
    old text was empty — the streamed reply's placeholder — where adding is exact and cheap.
    """
    added: dict[str, list[str] | None] = {}  # conversation id -> texts whose words to add; None: recompute
    for obj in session.new:
        if isinstance(obj, Message) and obj.content:
            _add_text(added, obj.conversation_id, obj.content)
    for obj in session.dirty:
        if isinstance(obj, Message):
            history = inspect(obj).attrs.content.history
            if not history.deleted and not history.added:
                continue
            old = history.deleted[0] if history.deleted else None
            if old is not None and not old.strip():
                _add_text(added, obj.conversation_id, obj.content or "")
            else:
                added[obj.conversation_id] = None
    for obj in session.deleted:
        if isinstance(obj, Message):
            added[obj.conversation_id] = None
    if added:
        connection = session.connection()
        for conversation_id, texts in added.items():
            _update_index(connection, conversation_id, texts)


def _add_text(added: dict[str, list[str] | None], conversation_id: str, content: str) -> None:
    texts = added.setdefault(conversation_id, [])
    if texts is not None:
        texts.append(content)


def _update_index(conn: Connection, conversation_id: str, texts: list[str] | None) -> None:
    """Add the words of `texts` to the conversation's entry, or recompute it when `texts` is None."""
    params = {"c": conversation_id}
    if conn.dialect.name == "postgresql":
        if texts is None:
            conn.execute(text(f"UPDATE conversation SET search_words = ({PG_CONVERSATION_WORDS}) WHERE id = :c"),
                         params)
        else:
            conn.execute(text("UPDATE conversation SET search_words = "
                              "strip(coalesce(search_words, ''::tsvector) || to_tsvector('simple', :t)) WHERE id = :c"),
                         {**params, "t": "\n".join(texts)})
        return
    if conn.dialect.name != "sqlite":
        return
    rowid = conn.execute(text("SELECT rowid FROM conversation WHERE id = :c"), params).scalar()
    if rowid is None:
        return
    stored = conn.execute(text("SELECT words FROM conversation_fts WHERE rowid = :r"), {"r": rowid}).scalar()
    if texts is None:
        contents = conn.execute(text("SELECT content FROM message WHERE conversation_id = :c"), params).scalars()
        words = word_list("\n".join(contents))
    else:
        existing = stored.split() if stored else []
        words = list(dict.fromkeys([*existing, *word_list("\n".join(texts))]))
        if len(words) == len(existing):
            return
    if stored is not None:
        conn.execute(text("DELETE FROM conversation_fts WHERE rowid = :r"), {"r": rowid})
    if words:
        conn.execute(text("INSERT INTO conversation_fts(rowid, words) VALUES (:r, :w)"),
                     {"r": rowid, "w": " ".join(words)})


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
    if session.get_bind().dialect.name == "sqlite":
        # The entry goes with the conversation (its rowid may be reused); PostgreSQL's goes with the row.
        session.execute(text("DELETE FROM conversation_fts WHERE rowid = "
                             "(SELECT rowid FROM conversation WHERE id = :c)"), {"c": conversation_id})
    session.exec(delete(Message).where(col(Message.conversation_id) == conversation_id))
    session.delete(conv)
    return True
