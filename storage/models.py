"""SQLModel tables: users, conversations, messages, runs and their event log."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Text
from sqlmodel import Field, SQLModel


def new_id() -> str:
    """A fresh opaque id."""
    return uuid.uuid4().hex


def utcnow() -> datetime:
    """Timezone-aware now, stored as UTC."""
    return datetime.now(UTC)


LOCAL_USER_ID = "local"


class User(SQLModel, table=True):
    """A person; loopback mode has exactly one, `local`."""

    id: str = Field(default_factory=new_id, primary_key=True)
    name: str = Field(index=True, unique=True)
    password_hash: str | None = None
    role: str = "member"
    created_at: datetime = Field(default_factory=utcnow)


class Conversation(SQLModel, table=True):
    """A chat thread and its settings."""

    id: str = Field(default_factory=new_id, primary_key=True)
    user_id: str = Field(index=True, foreign_key="user.id")
    title: str = "New chat"
    model: str | None = None
    system_prompt: str | None = Field(default=None, sa_column=Column(Text))
    temperature: float | None = None
    # The message the conversation currently ends at; earlier branches stay reachable.
    leaf_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow, index=True)


class Message(SQLModel, table=True):
    """One message of a conversation; assistant messages carry their run and usage."""

    id: str = Field(default_factory=new_id, primary_key=True)
    conversation_id: str = Field(index=True, foreign_key="conversation.id")
    position: int = Field(index=True)
    # Messages form a tree: regenerating or editing adds a sibling, the old branch is kept.
    parent_id: str | None = Field(default=None, index=True)
    role: str
    content: str = Field(default="", sa_column=Column(Text, nullable=False))
    run_id: str | None = Field(default=None, index=True)
    status: str = "completed"
    provider: str | None = None
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    extra: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Run(SQLModel, table=True):
    """A generation executed by the run manager."""

    id: str = Field(default_factory=new_id, primary_key=True)
    trace_id: str = Field(default_factory=new_id, index=True)
    user_id: str = Field(index=True, foreign_key="user.id")
    kind: str = Field(index=True)
    status: str = Field(default="running", index=True)
    conversation_id: str | None = Field(default=None, index=True)
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    result: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    error: str | None = Field(default=None, sa_column=Column(Text))
    error_type: str | None = None  # the error's kind (services/core/errors.py), e.g. rate_limited, token_cap
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    started_at: datetime = Field(default_factory=utcnow, index=True)
    finished_at: datetime | None = None
    # Replica mode: which process drives the run, and until when its lease holds (it renews it while the run
    # lives); another replica marks a running run whose lease has expired `interrupted` (services/core/leases.py).
    owner: str | None = None
    lease_until: datetime | None = None


class RunEventChunk(SQLModel, table=True):
    """A batch of a run's wire events, written at a boundary (never per token)."""

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True, foreign_key="run.id")
    first_seq: int
    last_seq: int
    events: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))


class Preset(SQLModel, table=True):
    """A saved configuration (e.g. a pair of duet bots) a person can reuse."""

    id: str = Field(default_factory=new_id, primary_key=True)
    user_id: str = Field(index=True, foreign_key="user.id")
    kind: str = Field(index=True)
    name: str
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Deliverable(SQLModel, table=True):
    """A generated marketing deliverable; its text lives in versions."""

    id: str = Field(default_factory=new_id, primary_key=True)
    user_id: str = Field(index=True, foreign_key="user.id")
    run_id: str = Field(index=True)
    module: str
    kind: str
    platform: str
    title: str
    hashtags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str = "draft"  # draft | approved
    approved_version: int | None = None
    created_at: datetime = Field(default_factory=utcnow)


class DeliverableVersion(SQLModel, table=True):
    """One saved text of a deliverable: generated, amended or regenerated."""

    id: int | None = Field(default=None, primary_key=True)
    deliverable_id: str = Field(index=True, foreign_key="deliverable.id")
    version: int
    content_markdown: str = Field(sa_column=Column(Text, nullable=False))
    note: str = "generated"
    created_at: datetime = Field(default_factory=utcnow)


class SchemaVersion(SQLModel, table=True):
    """The migration level of this database."""

    id: int = Field(default=1, primary_key=True)
    version: int


class AuthSession(SQLModel, table=True):
    """A browser login; only a hash of its cookie token is stored."""

    id: str = Field(primary_key=True)  # sha256 of the token
    user_id: str = Field(index=True, foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime = Field(index=True)


class ApiToken(SQLModel, table=True):
    """A personal API token; the secret is shown once, only its hash is kept."""

    id: str = Field(default_factory=new_id, primary_key=True)
    user_id: str = Field(index=True, foreign_key="user.id")
    name: str
    token_hash: str = Field(index=True, unique=True)
    prefix: str  # the first characters, so people can tell their tokens apart
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    expires_at: datetime | None = None  # None: until revoked
    record_calls: bool = True  # False: its /v1 calls leave nothing in History


class LimitEvent(SQLModel, table=True):
    """One counted event of a rate limit or login throttle, shared by replicas (services/core/shared_limits.py)."""

    id: int | None = Field(default=None, primary_key=True)
    scope: str = Field(index=True)  # which limit: "runs", "login", "login-address", "login-pages"
    key: str
    kind: str = "hit"  # "hit" counts one event, "clear" forgets the key's earlier ones, "forgive" takes one back
    at: float = Field(index=True)  # seconds since the epoch, as the replica's clock said


class AuthEpoch(SQLModel, table=True):
    """A counter bumped whenever a login or token ends, so every process (and the CLI) drops what it cached."""

    id: int = Field(default=1, primary_key=True)
    value: int = 0
