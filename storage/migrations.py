"""Ordered schema migrations: a fresh database is created at the latest level, an old one upgraded."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from storage import models

VERSION_TABLE = models.SchemaVersion.__table__  # type: ignore[attr-defined]

# Each entry upgrades from version i to i+1; append, never edit, once released.
MIGRATIONS: list[Callable[[Connection], None]] = []
LATEST = 1 + len(MIGRATIONS)


def migrate(engine: Engine) -> int:
    """Create or upgrade the schema; returns the version now in place."""
    with engine.begin() as conn:
        fresh = not inspect(conn).has_table("schemaversion")
        if fresh:
            SQLModel.metadata.create_all(conn)
            conn.execute(VERSION_TABLE.insert().values(id=1, version=LATEST))
            return LATEST
        row = conn.execute(VERSION_TABLE.select()).first()
        version = row.version if row else 1
        for step in MIGRATIONS[version - 1 :]:
            step(conn)
        # New tables added since are created; existing ones are altered by the steps above.
        SQLModel.metadata.create_all(conn)
        conn.execute(VERSION_TABLE.update().values(version=LATEST))
        return LATEST
