"""Storage on a real SQLite file and, when configured, a real PostgreSQL server."""

from __future__ import annotations

from sqlalchemy import inspect

from services.core.recovery import recover_interrupted
from services.kinds import KINDS
from storage import conversations as conv_repo
from storage import runs as run_repo
from storage.engine import Database
from storage.migrations import LATEST
from storage.models import Run


def test_fresh_database_gets_latest_schema_and_reopens(db_url: str) -> None:
    db = Database(db_url)
    db.open()
    db.open()  # opening again upgrades nothing and breaks nothing
    tables = set(inspect(db.engine).get_table_names())
    assert {"user", "conversation", "message", "run", "runeventchunk", "schemaversion"} <= tables
    from sqlmodel import select

    from storage.models import SchemaVersion
    assert db.session_call(lambda s: s.exec(select(SchemaVersion)).one().version) == LATEST
    db.close()


def test_conversations_listed_newest_first_and_searchable(db_url: str) -> None:
    db = Database(db_url)
    db.open()

    def fill(s):
        conv_repo.ensure_user(s, user_id="u1", name="u1")
        conv_repo.ensure_user(s, user_id="u2", name="u2")
        a = conv_repo.create_conversation(s, user_id="u1", title="Quarterly revenue")
        b = conv_repo.create_conversation(s, user_id="u1", title="Holiday plans")
        conv_repo.add_message(s, conversation_id=a.id, role="user", content="What was Q3 revenue?")
        conv_repo.add_message(s, conversation_id=b.id, role="user", content="Beaches in Portugal")
        conv_repo.add_message(s, conversation_id=b.id, role="assistant", content="Try the Algarve.")
        conv_repo.create_conversation(s, user_id="u2", title="Someone else's revenue")
        return a.id, b.id

    a, b = db.session_call(fill)
    items, total = db.session_call(conv_repo.list_conversations, user_id="u1")
    assert total == 2 and [i["id"] for i in items] == [b, a]
    assert items[0]["message_count"] == 2
    found, n = db.session_call(conv_repo.list_conversations, user_id="u1", q="algarve")
    assert n == 1 and found[0]["id"] == b
    found, n = db.session_call(conv_repo.list_conversations, user_id="u1", q="REVENUE")
    assert n == 1 and found[0]["id"] == a  # u2's conversation never shows
    assert db.session_call(conv_repo.delete_conversation, conversation_id=a, user_id="u2") is False
    assert db.session_call(conv_repo.delete_conversation, conversation_id=a, user_id="u1") is True
    assert db.session_call(conv_repo.list_conversations, user_id="u1")[1] == 1
    db.close()


def test_event_chunks_round_trip_and_recovery_keeps_partial_text(db_url: str) -> None:
    db = Database(db_url)
    db.open()

    def crash_mid_run(s):
        conv_repo.ensure_user(s, user_id="u1", name="u1")
        conv = conv_repo.create_conversation(s, user_id="u1")
        run = run_repo.create_run(s, run=Run(user_id="u1", kind="chat", conversation_id=conv.id))
        conv_repo.add_message(s, conversation_id=conv.id, role="assistant", content="",
                              status="running", run_id=run.id)
        run_repo.append_events(s, run_id=run.id, events=[
            {"seq": 1, "type": "text.delta", "data": {"delta": "Half "}},
            {"seq": 2, "type": "text.delta", "data": {"delta": "an answer"}}])
        return run.id, conv.id

    run_id, conv_id = db.session_call(crash_mid_run)
    assert [e["seq"] for e in db.session_call(run_repo.load_events, run_id=run_id, after_seq=1)] == [2]
    assert db.session_call(recover_interrupted, kinds=KINDS) == 1
    run = db.session_call(run_repo.get_run, run_id=run_id)
    assert run is not None and run.status == "interrupted" and run.finished_at is not None
    msgs = db.session_call(conv_repo.list_messages, conversation_id=conv_id)
    assert msgs[0].status == "interrupted" and msgs[0].content == "Half an answer"
    db.close()


def test_a_pooled_connection_the_server_dropped_is_replaced_after_idling(db_url: str, monkeypatch) -> None:
    """After a server restart (here: every connection terminated), the next call works: idle connections are
    checked before use instead of on every checkout."""
    import pytest
    from sqlalchemy import text

    from storage import engine as engine_module

    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has no server that drops connections")
    db = Database(db_url)
    db.open()
    mine = db.session_call(lambda s: s.exec(text("SELECT pg_backend_pid()")).one()[0])
    killer = engine_module.make_engine(db_url)
    with killer.begin() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": mine}).scalar()
    killer.dispose()
    monkeypatch.setattr(engine_module, "PING_IDLE_S", 0.0)  # the pooled connection counts as idle now
    again = db.session_call(lambda s: s.exec(text("SELECT pg_backend_pid()")).one()[0])
    assert again != mine
    db.close()
