"""An existing version-1 database upgrades in place, its messages linked and searchable."""

from __future__ import annotations

from sqlalchemy import text

from storage import conversations as conv_repo
from storage.engine import Database, make_engine
from storage.migrations import LATEST

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
