"""An existing version-1 database upgrades in place, its messages linked and searchable."""

from __future__ import annotations

from sqlalchemy import text

from storage import conversations as conv_repo
from storage.engine import Database, make_engine
from storage.migrations import LATEST
from storage.models import Message

V1_SCHEMA = [
    """CREATE TABLE user (id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL UNIQUE, password_hash VARCHAR,
       role VARCHAR NOT NULL, created_at DATETIME NOT NULL)""",
    """CREATE TABLE conversation (id VARCHAR PRIMARY KEY, user_id VARCHAR NOT NULL REFERENCES user(id),
       title VARCHAR NOT NULL, model VARCHAR, system_prompt TEXT, temperature FLOAT,
       created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL)""",
    """CREATE TABLE message (id VARCHAR PRIMARY KEY, conversation_id VARCHAR NOT NULL REFERENCES conversation(id),
       position INTEGER NOT NULL, role VARCHAR NOT NULL, content TEXT NOT NULL, run_id VARCHAR,
       status VARCHAR NOT NULL, provider VARCHAR, model VARCHAR, input_tokens INTEGER NOT NULL,
       output_tokens INTEGER NOT NULL, cost_usd FLOAT NOT NULL, extra JSON NOT NULL, created_at DATETIME NOT NULL)""",
    "CREATE TABLE schemaversion (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)",
    "INSERT INTO schemaversion VALUES (1, 1)",
    "INSERT INTO user VALUES ('local', 'local', NULL, 'admin', '2026-01-01 00:00:00')",
    """INSERT INTO conversation VALUES ('c1', 'local', 'Old chat', 'local/smollm2', NULL, NULL,
       '2026-01-01 00:00:00', '2026-01-01 00:00:00')""",
]
V1_MESSAGES = [("m1", 0, "user", "Where is the lighthouse?"), ("m2", 1, "assistant", "On the cliff."),
               ("m3", 2, "user", "Thanks")]


def test_version_one_database_upgrades_and_keeps_its_conversations(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'v1.db'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        for statement in V1_SCHEMA:
            conn.execute(text(statement))
        for mid, pos, role, content in V1_MESSAGES:
            conn.execute(text("INSERT INTO message VALUES (:id, 'c1', :pos, :role, :content, NULL, 'completed',"
                              " NULL, NULL, 0, 0, 0.0, '{}', '2026-01-01 00:00:00')"),
                         {"id": mid, "pos": pos, "role": role, "content": content})
    engine.dispose()

    db = Database(url)
    db.open()
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT version FROM schemaversion")).scalar() == LATEST
    path = db.session_call(conv_repo.current_path, conversation_id="c1")
    assert [e.message.id for e in path] == ["m1", "m2", "m3"]
    assert [e.message.parent_id for e in path] == [None, "m1", "m2"]
    found, total = db.session_call(conv_repo.list_conversations, user_id="local", q="lighthouse")
    assert total == 1 and found[0]["message_count"] == 3
    # New messages continue the old conversation.
    db.session_call(conv_repo.add_message, conversation_id="c1", role="assistant", content="You're welcome")
    assert db.session_call(conv_repo.current_path, conversation_id="c1")[-1].message.parent_id == "m3"
    db.close()


def test_search_matches_word_prefixes_and_ignores_punctuation(db_url: str) -> None:
    db = Database(db_url)
    db.open()

    def fill(s):
        conv_repo.ensure_user(s, user_id="u", name="u")
        a = conv_repo.create_conversation(s, user_id="u", title="A")
        conv_repo.add_message(s, conversation_id=a.id, role="user", content="Lighthouses of Brittany, please!")
        b = conv_repo.create_conversation(s, user_id="u", title="B")
        conv_repo.add_message(s, conversation_id=b.id, role="user", content="light meals")
        return a.id, b.id

    a, b = db.session_call(fill)
    search = lambda q: {i["id"] for i in db.session_call(conv_repo.list_conversations, user_id="u", q=q)[0]}  # noqa: E731
    assert search("light") == {a, b}
    assert search("lighthouse britt") == {a}
    assert search('"; DROP TABLE message; --') == set()
    assert search("britt*any)") == set()  # FTS syntax in the query is treated as words
    # Edits and deletes reach the index.
    db.session_call(lambda s: conv_repo.update_message(
        s, message_id=conv_repo.list_messages(s, conversation_id=b)[0].id, content="heavy meals"))
    assert search("light") == {a}
    db.session_call(conv_repo.delete_conversation, conversation_id=a, user_id="u")
    assert search("lighthouse") == set()
    db.close()


def _search(db: Database, user_id: str, q: str) -> set[str]:
    return {i["id"] for i in db.session_call(conv_repo.list_conversations, user_id=user_id, q=q)[0]}


def test_version_two_database_upgrade_backfills_the_conversation_index(db_url: str) -> None:
    db = Database(db_url)
    db.open()

    def fill(s):
        conv_repo.ensure_user(s, user_id="u", name="u")
        a = conv_repo.create_conversation(s, user_id="u", title="A")
        conv_repo.add_message(s, conversation_id=a.id, role="user", content="Where is the lighthouse?")
        conv_repo.add_message(s, conversation_id=a.id, role="assistant", content="On the cliff near Brest.")
        b = conv_repo.create_conversation(s, user_id="u", title="B")
        conv_repo.add_message(s, conversation_id=b.id, role="user", content="A cliff walk")
        return a.id, b.id

    a, b = db.session_call(fill)
    # Back to version 2: the same schema without the conversation index.
    with db.engine.begin() as conn:
        if db.is_sqlite:
            conn.execute(text("DROP TABLE conversation_fts"))
        else:
            conn.execute(text("ALTER TABLE conversation DROP COLUMN search_words"))
        conn.execute(text("UPDATE schemaversion SET version = 2"))
    db.close()

    db = Database(db_url)
    db.open()
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT version FROM schemaversion")).scalar() == LATEST
    assert _search(db, "u", "cliff") == {a, b}
    assert _search(db, "u", "lighthouse brest") == {a}  # words from different messages of one conversation
    assert _search(db, "u", "bre") == {a}
    assert _search(db, "u", "walk lighthouse") == set()
    db.close()


def test_conversation_index_follows_new_messages_updates_and_deletes(db_url: str) -> None:
    db = Database(db_url)
    db.open()

    def fill(s):
        conv_repo.ensure_user(s, user_id="u", name="u")
        a = conv_repo.create_conversation(s, user_id="u", title="Trip")
        conv_repo.add_message(s, conversation_id=a.id, role="user", content="Plan a trip to Lisbon")
        reply = conv_repo.add_message(s, conversation_id=a.id, role="assistant", content="", status="running")
        return a.id, reply.id

    a, reply = db.session_call(fill)
    assert _search(db, "u", "tram") == set()
    # The streamed reply's final content.
    db.session_call(conv_repo.update_message, message_id=reply, content="Take tram 28 in Alfama.", status="completed")
    assert _search(db, "u", "tram") == {a}
    assert _search(db, "u", "lisbon alfama") == {a}  # all words in the conversation, not in one message
    # A later message.
    db.session_call(conv_repo.add_message, conversation_id=a, role="user", content="And pastéis de nata?")
    assert _search(db, "u", "nata") == {a}
    assert _search(db, "u", "trip") == {a}  # title substring still matches
    # An edit removes words no other message holds; a direct ORM write (as recovery does) is indexed too.
    db.session_call(conv_repo.update_message, message_id=reply, content="Walk around Belém.")
    assert _search(db, "u", "tram") == set() and _search(db, "u", "belém") == {a}

    def recover(s):
        msg = s.get(Message, reply)
        msg.content = "Ferry to Cacilhas"
        s.add(msg)

    db.session_call(recover)
    assert _search(db, "u", "cacilhas") == {a} and _search(db, "u", "belém") == set()
    # Deleted: not found, even by a new conversation that may take over the old row id.
    db.session_call(conv_repo.delete_conversation, conversation_id=a, user_id="u")
    assert _search(db, "u", "lisbon") == set()

    def again(s):
        c = conv_repo.create_conversation(s, user_id="u", title="Other")
        conv_repo.add_message(s, conversation_id=c.id, role="user", content="Porto")
        return c.id

    c = db.session_call(again)
    assert _search(db, "u", "lisbon") == set() and _search(db, "u", "porto") == {c}
    db.close()


def test_version_three_database_gains_token_expiry_and_run_error_types(db_url: str) -> None:
    from storage import auth_store
    from storage import users as user_repo

    db = Database(db_url)
    db.open()
    user = db.session_call(user_repo.add_user, name="tia", password_hash="x")
    db.session_call(auth_store.add_token, user_id=user.id, name="old", token_hash="h" * 64, prefix="lt_old")
    with db.engine.begin() as conn:  # back to version 3: no expiry column, no epoch table
        conn.execute(text("ALTER TABLE apitoken DROP COLUMN expires_at"))
        conn.execute(text("ALTER TABLE run DROP COLUMN error_type"))
        conn.execute(text("DROP TABLE authepoch"))
        conn.execute(text("UPDATE schemaversion SET version = 3"))
    db.close()

    db = Database(db_url)
    db.open()
    found = db.session_call(auth_store.use_token, token_hash="h" * 64)
    assert found is not None and found[0].name == "tia" and found[1] is None  # the old token lives, no expiry
    assert db.session_call(auth_store.auth_epoch) == 0
    with db.engine.connect() as conn:  # and runs keep their error's type from now on
        assert conn.execute(text("SELECT count(*) FROM run WHERE error_type IS NULL")).scalar() == 0
    db.close()


def test_version_four_database_keeps_recording_its_tokens_calls(db_url: str) -> None:
    from storage import auth_store
    from storage import users as user_repo

    db = Database(db_url)
    db.open()
    user = db.session_call(user_repo.add_user, name="ula", password_hash="x")
    db.session_call(auth_store.add_token, user_id=user.id, name="old", token_hash="k" * 64, prefix="lt_old")
    with db.engine.begin() as conn:  # back to version 4: tokens had no recording switch
        conn.execute(text("ALTER TABLE apitoken DROP COLUMN record_calls"))
        conn.execute(text("UPDATE schemaversion SET version = 4"))
    db.close()

    db = Database(db_url)
    db.open()
    found = db.session_call(auth_store.use_token, token_hash="k" * 64)
    assert found is not None and found[2] is True  # an existing token goes on being recorded, as before
    quiet = db.session_call(auth_store.add_token, user_id=user.id, name="quiet", token_hash="q" * 64,
                            prefix="lt_quiet", record_calls=False)
    assert quiet.record_calls is False
    assert db.session_call(auth_store.use_token, token_hash="q" * 64)[2] is False  # type: ignore[index]
    db.close()


def test_version_five_database_gains_run_leases(db_url: str) -> None:
    from storage import users as user_repo
    from storage.models import Run

    db = Database(db_url)
    db.open()
    user = db.session_call(user_repo.add_user, name="vic", password_hash="x")
    run = Run(user_id=user.id, kind="duet", status="completed")
    db.session_call(lambda s: s.add(run))
    with db.engine.begin() as conn:  # back to version 5: runs had no owner or lease
        conn.execute(text("ALTER TABLE run DROP COLUMN owner"))
        conn.execute(text("ALTER TABLE run DROP COLUMN lease_until"))
        conn.execute(text("UPDATE schemaversion SET version = 5"))
    db.close()

    db = Database(db_url)
    db.open()
    with db.engine.connect() as conn:
        row = conn.execute(text("SELECT status, owner, lease_until FROM run")).one()
    assert tuple(row) == ("completed", None, None)  # the run is kept; no owner, no lease
    db.close()


def test_processes_opening_an_empty_database_together_all_start(db_url: str) -> None:
    """Replicas started at once each open the database: the schema is made once, and nobody fails."""
    from concurrent.futures import ThreadPoolExecutor

    def open_one(_: int) -> int:
        db = Database(db_url)
        try:
            db.open()
            with db.engine.connect() as conn:
                return int(conn.execute(text("SELECT version FROM schemaversion")).scalar_one())
        finally:
            db.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        versions = list(pool.map(open_one, range(4)))
    assert versions == [LATEST] * 4
