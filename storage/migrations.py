"""Ordered schema migrations: a fresh database is created at the latest level, an old one upgraded.

Full-text search objects are dialect-specific and created idempotently after either path.
"""

from __future__ import annotations

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


# Each entry upgrades from version i+1 to i+2; append, never edit, once released.
MIGRATIONS: list[Callable[[Connection], None]] = [_v1_to_v2_branches]
LATEST = 1 + len(MIGRATIONS)


def migrate(engine: Engine) -> int:
    """Create or upgrade the schema; returns the version now in place."""
    with engine.begin() as conn:
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
    """FTS5 over message text on SQLite, a GIN tsvector index on PostgreSQL."""
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
