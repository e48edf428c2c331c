"""Ordered schema migrations: a fresh database is created at the latest level, an old one upgraded.

Full-text search objects are dialect-specific and created idempotently after either path.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from storage import models

VERSION_TABLE = models.SchemaVersion.__table__  # type: ignore[attr-defined]


def _v1_to_v2_branches(conn: Connection) -> None:
    """Messages form a tree (regenerate/edit keep old branches); link existing ones in order."""
    conn.execute(text("ALTER TABLE message ADD COLUMN parent_id VARCHAR"))
    conn.execute(text("CREATE INDEX ix_message_parent_id ON message (parent_id)"))
    conn.execute(text("ALTER TABLE conversation ADD COLUMN leaf_id VARCHAR"))
    rows = conn.execute(text("SELECT id, conversation_id FROM message ORDER BY conversation_id, position"))
    previous: dict[str, str] = {}
    for message_id, conversation_id in rows.fetchall():
        if conversation_id in previous:
            conn.execute(text("UPDATE message SET parent_id = :p WHERE id = :id"),
                         {"p": previous[conversation_id], "id": message_id})
        previous[conversation_id] = message_id
    for conversation_id, leaf in previous.items():
        conn.execute(text("UPDATE conversation SET leaf_id = :l WHERE id = :c"), {"l": leaf, "c": conversation_id})


def _v2_to_v3_conversation_search(conn: Connection) -> None:
    """Search at conversation granularity: one index entry per conversation and word, backfilled."""
    _conversation_search_objects(conn)
    rebuild_conversation_search(conn)


def _v3_to_v4_token_expiry(conn: Connection) -> None:
    """API tokens may expire, runs keep their error's type; the auth epoch table is created by create_all."""
    found = inspect(conn)
    if found.has_table("apitoken") and "expires_at" not in {c["name"] for c in found.get_columns("apitoken")}:
        conn.execute(text("ALTER TABLE apitoken ADD COLUMN expires_at TIMESTAMP"))
    if found.has_table("run") and "error_type" not in {c["name"] for c in found.get_columns("run")}:
        conn.execute(text("ALTER TABLE run ADD COLUMN error_type VARCHAR"))


def _v4_to_v5_unrecorded_tokens(conn: Connection) -> None:
    """An API token may keep its /v1 calls out of History."""
    found = inspect(conn)
    if found.has_table("apitoken") and "record_calls" not in {c["name"] for c in found.get_columns("apitoken")}:
        conn.execute(text("ALTER TABLE apitoken ADD COLUMN record_calls BOOLEAN NOT NULL DEFAULT TRUE"))


def _v5_to_v6_run_leases(conn: Connection) -> None:
    """Runs carry their owner and lease, for replicas; the shared limit table is created by create_all."""
    found = inspect(conn)
    if found.has_table("run"):
        columns = {c["name"] for c in found.get_columns("run")}
        if "owner" not in columns:
            conn.execute(text("ALTER TABLE run ADD COLUMN owner VARCHAR"))
        if "lease_until" not in columns:
            conn.execute(text("ALTER TABLE run ADD COLUMN lease_until TIMESTAMP"))


# Each entry upgrades from version i+1 to i+2; append, never edit, once released.
MIGRATIONS: list[Callable[[Connection], None]] = [_v1_to_v2_branches, _v2_to_v3_conversation_search,
                                                  _v3_to_v4_token_expiry, _v4_to_v5_unrecorded_tokens,
                                                  _v5_to_v6_run_leases]
LATEST = 1 + len(MIGRATIONS)
MIGRATION_LOCK = 0x4C616E74  # "Lant": the advisory lock key schema changes hold on PostgreSQL


def migrate(engine: Engine) -> int:
    """Create or upgrade the schema; returns the version now in place."""
    with engine.begin() as conn:
        # Processes opening the database together (replicas; the app and `lantern users`) would each create or
        # upgrade the schema: one at a time, the others then find it in place. The lock ends with the transaction.
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        elif conn.dialect.name == "sqlite":  # the write lock now, not at the first write (DDL takes none)
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        if not inspect(conn).has_table("schemaversion"):
            SQLModel.metadata.create_all(conn)
            conn.execute(VERSION_TABLE.insert().values(id=1, version=LATEST))
        else:
            row = conn.execute(VERSION_TABLE.select()).first()
            version = row.version if row else 1
            for step in MIGRATIONS[version - 1:]:
                step(conn)
            # Tables added since are created; existing ones were altered by the steps above.
            SQLModel.metadata.create_all(conn)
            conn.execute(VERSION_TABLE.update().values(version=LATEST))
        _full_text(conn)
    return LATEST


def _full_text(conn: Connection) -> None:
    """FTS5 over message text on SQLite, a GIN tsvector index on PostgreSQL; and the conversation index."""
    if _conversation_search_objects(conn):
        rebuild_conversation_search(conn)
    if conn.dialect.name == "sqlite":
        exists = conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'message_fts'")).first()
        if exists:
            return
        conn.execute(text("CREATE VIRTUAL TABLE message_fts USING fts5("
                          "content, content='message', content_rowid='rowid', tokenize='unicode61')"))
        conn.execute(text("CREATE TRIGGER message_fts_ai AFTER INSERT ON message BEGIN "
                          "INSERT INTO message_fts(rowid, content) VALUES (new.rowid, new.content); END"))
        conn.execute(text("CREATE TRIGGER message_fts_ad AFTER DELETE ON message BEGIN "
                          "INSERT INTO message_fts(message_fts, rowid, content) "
                          "VALUES ('delete', old.rowid, old.content); END"))
        conn.execute(text("CREATE TRIGGER message_fts_au AFTER UPDATE OF content ON message BEGIN "
                          "INSERT INTO message_fts(message_fts, rowid, content) "
                          "VALUES ('delete', old.rowid, old.content); "
                          "INSERT INTO message_fts(rowid, content) VALUES (new.rowid, new.content); END"))
        conn.execute(text("INSERT INTO message_fts(message_fts) VALUES ('rebuild')"))
    elif conn.dialect.name == "postgresql":
        conn.execute(text("CREATE INDEX IF NOT EXISTS ix_message_fts ON message "
                          "USING gin (to_tsvector('simple', content))"))


# ---- conversation search index ----------------------------------------------------------------------
# One entry per conversation holding the distinct words of its messages, so a search costs
# O(matching conversations), not O(matching messages). Kept current by storage.conversations.
# SQLite: FTS5 `conversation_fts(words)`, rowid = conversation.rowid, words lower-cased and space-separated.
# PostgreSQL: `conversation.search_words`, a stripped tsvector ('simple' config) with a GIN index.


def word_list(content: str) -> list[str]:
    """The distinct lower-cased words of `content`, in first-occurrence order (SQLite's index text)."""
    return list(dict.fromkeys(re.findall(r"\w+", content.lower())))


def _conversation_search_objects(conn: Connection) -> bool:
    """Create the conversation index if it is missing; True when it was just created."""
    if conn.dialect.name == "sqlite":
        if conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'conversation_fts'")).first():
            return False
        conn.execute(text("CREATE VIRTUAL TABLE conversation_fts USING fts5(words, tokenize='unicode61')"))
        return True
    if conn.dialect.name == "postgresql":
        exists = conn.execute(text("SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
                                   " AND table_name = 'conversation' AND column_name = 'search_words'")).first()
        if not exists:
            conn.execute(text("ALTER TABLE conversation ADD COLUMN search_words tsvector"))
        conn.execute(text("CREATE INDEX IF NOT EXISTS ix_conversation_search_words ON conversation "
                          "USING gin (search_words)"))
        return not exists
    return False


# The stripped tsvector of every word in the messages of conversation `:c` (PostgreSQL).
PG_CONVERSATION_WORDS = (
    "SELECT array_to_tsvector(coalesce(array_agg(DISTINCT w), '{}')) FROM message m "
    "CROSS JOIN LATERAL unnest(tsvector_to_array(to_tsvector('simple', m.content))) AS w "
    "WHERE m.conversation_id = :c")


def rebuild_conversation_search(conn: Connection) -> None:
    """Fill the conversation index from all messages (migration, bulk loads)."""
    if conn.dialect.name == "sqlite":
        conn.execute(text("DELETE FROM conversation_fts"))
        rows = conn.execute(text("SELECT c.rowid, m.content FROM conversation c "
                                 "JOIN message m ON m.conversation_id = c.id ORDER BY c.id"))
        entries: list[dict[str, object]] = []
        current: int | None = None
        words: dict[str, None] = {}
        for rowid, content in rows:
            if rowid != current:
                if current is not None and words:
                    entries.append({"r": current, "w": " ".join(words)})
                current, words = rowid, {}
            words.update(dict.fromkeys(re.findall(r"\w+", content.lower())))
        if current is not None and words:
            entries.append({"r": current, "w": " ".join(words)})
        if entries:
            conn.execute(text("INSERT INTO conversation_fts(rowid, words) VALUES (:r, :w)"), entries)
    elif conn.dialect.name == "postgresql":
        conn.execute(text("SET LOCAL work_mem = '256MB'"))
        conn.execute(text("UPDATE conversation c SET search_words = w.words FROM ("
                          "SELECT m.conversation_id, array_to_tsvector(array_agg(DISTINCT w)) AS words FROM message m "
                          "CROSS JOIN LATERAL unnest(tsvector_to_array(to_tsvector('simple', m.content))) AS w "
                          "GROUP BY m.conversation_id) w WHERE w.conversation_id = c.id"))
