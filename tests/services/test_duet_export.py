"""Duet export: lossless JSON, Markdown and PDF, from stored runs and through the real duet service."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from markdown_it import MarkdownIt

from services.core.errors import ExportUnavailable
from services.core.events import TextDelta
from services.duet import export as duet_export
from services.duet.export import (
    AGENT_FIELDS,
    CHANGE_KEYS,
    TURN_FIELDS,
    document,
    filename,
    to_html,
    to_markdown,
)
from services.duet.service import STEERABLE, AgentConfig, DuetService, Turn
from services.export.formats import to_json, to_pdf
from storage import runs as run_repo
from storage.models import Run

WHEN = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
DOC_KEYS = {"format", "version", "exported_at", "id", "trace_id", "status", "started_at", "finished_at", "topic",
            "turns_requested", "continue_from", "conversation_runs", "agents_at_start", "agents_at_end", "turns",
            "changes", "totals", "run_totals", "error"}


# --- stored runs, no database ------------------------------------------------------------------------------


def test_document_is_lossless_and_whitelisted() -> None:
    run = stored_run()
    doc = document(run)
    assert json.loads(to_json(doc)) == doc
    assert set(doc) == DOC_KEYS
    assert (doc["format"], doc["version"]) == ("lantern.duet", 1)
    assert (doc["id"], doc["trace_id"], doc["status"], doc["topic"]) == ("r1", "t1", "stopped", "Is SQL a language?")
    assert doc["started_at"] == "2025-06-01T12:00:00+00:00" and doc["finished_at"] == "2025-06-01T12:00:07.500000+00:00"
    assert datetime.fromisoformat(doc["exported_at"]).tzinfo is not None
    assert doc["agents_at_start"] == run.config["agents"]
    assert doc["agents_at_end"] == run.result["agents"]
    assert doc["agents_at_end"][1]["temperature"] == 1.2 and doc["agents_at_start"][1]["temperature"] == 0.9
    assert doc["turns"] == [{k: t[k] for k in TURN_FIELDS} for t in run.result["turns"]]
    assert doc["changes"] == run.result["changes"]
    assert doc["totals"] == {"turns": 4, "input_tokens": 40, "output_tokens": 12, "cost_usd": 0.0123, "seconds": 7.5}
    assert doc["continue_from"] is None and doc["error"] is None and doc["turns_requested"] == 4
    text = to_json(doc)
    assert "user-42" not in text and "user_id" not in text
    assert "not-exported" not in text  # unknown keys in a stored turn are not passed through


def test_naive_times_from_sqlite_are_utc() -> None:
    naive = WHEN.replace(tzinfo=None)
    run = stored_run(started_at=naive, finished_at=naive + timedelta(seconds=2))
    doc = document(run)
    assert doc["started_at"] == "2025-06-01T12:00:00+00:00" and doc["totals"]["seconds"] == 2.0


def test_a_running_run_without_a_result_exports_its_configuration() -> None:
    run = stored_run(status="running", result={}, finished_at=None, input_tokens=0, output_tokens=0, cost_usd=0.0)
    doc = document(run)
    assert doc["status"] == "running" and doc["finished_at"] is None
    assert doc["turns"] == [] and doc["changes"] == []
    assert doc["agents_at_end"] == doc["agents_at_start"] == run.config["agents"]
    assert doc["totals"] == {"turns": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "seconds": None}
    md = to_markdown(doc)
    assert md.startswith("# Duet: Is SQL a language?\n") and "_Still running · started 2025-06-01 12:00 UTC" in md
    assert "### Turn" not in md and "0 turns · 0 in / 0 out tokens · $0.00" in md


def test_a_failed_run_carries_its_error() -> None:
    result = {**stored_result(), "error": {"type": "unavailable", "message": "upstream went away"}}
    doc = document(stored_run(status="failed", result=result, error="upstream went away"))
    assert doc["error"] == {"type": "unavailable", "message": "upstream went away"}
    assert "> Error: upstream went away" in to_markdown(doc)
    # A run that failed before its body could record anything still says why.
    doc = document(stored_run(status="failed", result={}, error="internal error; see the server log"))
    assert doc["error"] == {"type": None, "message": "internal error; see the server log"}


def test_markdown_has_bots_turns_changes_and_totals_in_order() -> None:
    md = to_markdown(document(stored_run()))
    tokens = MarkdownIt("commonmark").parse(md)
    headings = [(t.tag, tokens[i + 1].content) for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert headings == [
        ("h1", "Duet: Is SQL a language?"), ("h2", "Bots"), ("h2", "Conversation"),
        ("h3", "Turn 1 — Alice (scripted/alice)"), ("h3", "Turn 2 — Bob (scripted/bob)"),
        ("h3", "Turn 3 — Alice (scripted/alice)"), ("h3", "Turn 4 — Bob (scripted/bob) — stopped"),
        ("h2", "Totals"),  # a heading, not code: the stopped turn's open code block was closed
    ]
    assert "**Alice** — scripted/alice · temperature 0.5 · up to 256 tokens a turn\n\n> Be brief.\n" in md
    assert "**Bob** — scripted/bob · temperature 0.9 · up to 256 tokens a turn\n\n> Be <b>curt</b>.\n> Always.\n" in md
    change = "> ✎ Bob's temperature changed to 1.2 (from turn 4)"
    assert md.index("### Turn 3") < md.index(change) < md.index("### Turn 4")
    assert "Yes, **declarative**." in md  # content verbatim
    assert "_4 in / 2 out tokens · 0.4 s · $0.0021_" in md
    assert md.rstrip().endswith("4 turns · 40 in / 12 out tokens · 7.5 s · $0.0123")


def test_a_system_prompt_change_is_quoted_in_full() -> None:
    result = stored_result()
    result["changes"].append({"before_turn": 2, "agent_index": 0, "agent": "Alice",
                              "changes": {"system_prompt": "Argue.\nBe loud.", "model": "scripted/loud"},
                              "at": "2025-06-01T12:00:03+00:00"})
    result["agents"][0].update(system_prompt="Argue.\nBe loud.", model="scripted/loud")
    md = to_markdown(document(stored_run(result=result)))
    block = ("> ✎ Alice's system prompt changed (from turn 3) to:\n>\n> > Argue.\n> > Be loud.\n"
             "> ✎ Alice's model changed to scripted/loud (from turn 3)\n")
    assert block in md
    assert md.index("### Turn 2") < md.index(block) < md.index("### Turn 3")


def test_a_change_after_a_bots_last_turn_is_shown_as_not_used() -> None:
    result = stored_result()
    result["agents"][0]["temperature"] = 0.1  # steered, but Alice never spoke again
    md = to_markdown(document(stored_run(result=result)))
    line = "> ✎ Alice's temperature changed to 0.1 (after its last turn; not used)"
    assert md.index("### Turn 4") < md.index(line) < md.index("## Totals")


def test_html_escapes_prompts_and_model_output() -> None:
    result = stored_result()
    result["turns"][0]["content"] = 'Look: <script>window.x = 1</script> <img src=x onerror="y()"> ![c](http://10.0.0.1/c.png)'
    doc = document(stored_run(result=result))
    doc["agents_at_start"][0]["system_prompt"] = "<script>alert(1)</script> & be brief"
    body = to_html(doc).split("<body>", 1)[1]
    assert "<script" not in body and "<img" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; be brief" in body
    assert "&lt;script&gt;window.x = 1&lt;/script&gt;" in body
    assert "[image: c — http://10.0.0.1/c.png]" in body
    assert "<strong>declarative</strong>" in body  # turns are rendered as Markdown
    assert "Bob&#x27;s temperature changed to 1.2 (from turn 4)" in body


def test_missing_weasyprint_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # as if it were not installed
    with pytest.raises(ExportUnavailable) as info:
        to_pdf(duet_export, document(stored_run()))
    assert "pip install 'weasyprint>=62'" in str(info.value)


@pytest.mark.parametrize(("topic", "fmt", "expected"), [
    ("Is SQL a language?", "md", "duet-is-sql-a-language.md"),
    ("Über «SQL» / ../../etc/passwd", "pdf", "duet-uber-sql-etc-passwd.pdf"),
    ('a "quoted"\r\nheader', "json", "duet-a-quoted-header.json"),
    ("日本語", "md", "duet.md"),
    ("x" * 200, "md", "duet-" + "x" * 60 + ".md"),
])
def test_filename_is_a_safe_slug(topic: str, fmt: str, expected: str) -> None:
    assert filename({"topic": topic}, fmt) == expected


def test_whitelists_follow_the_duet_service() -> None:
    """A field added to a bot, a turn or the steerable settings must be exported too (or consciously not)."""
    assert tuple(f.name for f in fields(AgentConfig)) == AGENT_FIELDS
    assert tuple(f.name for f in fields(Turn)) == TURN_FIELDS
    assert set(STEERABLE) <= set(CHANGE_KEYS)


def test_a_continued_duet_covers_the_whole_conversation() -> None:
    """Its config carries the earlier run: the bots as they started, its changes and totals (even when the
    continuation's own result lost them, as a crash-recovered one does)."""
    earlier_change = {"before_turn": 1, "agent_index": 1, "agent": "Bob", "changes": {"temperature": 1.2},
                      "at": "2025-06-01T11:00:01+00:00"}
    start = stored_agents()
    later = stored_agents()
    later[1]["temperature"] = 1.2
    config = {"topic": "Is SQL a language?", "turns": 2, "agents": later, "continue_from": "r0",
              "conversation": {"runs": ["r0"], "agents_at_start": start, "changes": [earlier_change],
                               "totals": {"turns": 2, "input_tokens": 30, "output_tokens": 7, "cost_usd": 0.01,
                                          "seconds": 4.0}}}
    turns = [stored_turn(n, f"Turn {n}.") for n in range(4)]
    for result_changes in ([earlier_change], []):  # as the body stores it, and as recovery rebuilds it
        result = {"topic": "Is SQL a language?", "agents": later, "turns": turns, "changes": result_changes}
        doc = document(stored_run(id="r1", config=config, result=result, status="completed"))
        assert doc["continue_from"] == "r0" and doc["conversation_runs"] == ["r0", "r1"]
        assert doc["agents_at_start"] == start and doc["agents_at_start"][1]["temperature"] == 0.9
        assert doc["changes"] == [earlier_change]
        assert doc["run_totals"] == {"turns": 2, "input_tokens": 40, "output_tokens": 12, "cost_usd": 0.0123,
                                     "seconds": 7.5}
        assert doc["totals"] == {"turns": 4, "input_tokens": 70, "output_tokens": 19, "cost_usd": 0.0223,
                                 "seconds": 11.5}
        md = to_markdown(doc)
        line = "> ✎ Bob's temperature changed to 1.2 (from turn 2)"
        assert md.index("### Turn 1") < md.index(line) < md.index("### Turn 2")
        assert "not used" not in md


# --- through the real duet service ---------------------------------------------------------------------


async def test_exports_a_real_duet_in_three_formats(lantern: Any) -> None:
    scripted = lantern.registry.scripted
    scripted.add_script("alice", ["Hi Bob.", "Indeed."])
    scripted.add_script("bob", ["Hello Alice.", "Quite so."])
    agents = [agent("Alice", "scripted/alice", "Be brief", 0.5),
              agent("Bob", "scripted/bob", "<script>alert('x')</script> Be curt", 0.9)]
    active = await duet_service(lantern).start(user_id="local", topic="Tea or coffee?", turns=4, agents=agents)
    await drain(lantern, active.run.id)
    run = await load(lantern, active.run.id)
    doc = document(run)

    # JSON: lossless.
    assert json.loads(to_json(doc)) == doc
    assert (doc["id"], doc["trace_id"], doc["status"], doc["topic"]) == (run.id, run.trace_id, "completed",
                                                                           "Tea or coffee?")
    assert [a["name"] for a in doc["agents_at_start"]] == ["Alice", "Bob"]
    assert doc["agents_at_start"][0] == {"name": "Alice", "model": "scripted/alice", "system_prompt": "Be brief",
                                         "temperature": 0.5, "max_tokens": doc["agents_at_start"][0]["max_tokens"]}
    assert doc["agents_at_start"] == run.config["agents"] and doc["agents_at_end"] == run.result["agents"]
    assert doc["turns"] == run.result["turns"] and doc["changes"] == []
    assert [(t["turn"], t["agent"], t["model"], t["content"], t["status"]) for t in doc["turns"]] == [
        (0, "Alice", "scripted/alice", "Hi Bob.", "completed"), (1, "Bob", "scripted/bob", "Hello Alice.", "completed"),
        (2, "Alice", "scripted/alice", "Indeed.", "completed"), (3, "Bob", "scripted/bob", "Quite so.", "completed")]
    assert all(t["output_tokens"] > 0 and t["input_tokens"] > 0 and t["seconds"] >= 0 for t in doc["turns"])
    totals = doc["totals"]
    assert (totals["input_tokens"], totals["output_tokens"], totals["cost_usd"]) == (
        run.input_tokens, run.output_tokens, run.cost_usd)
    assert totals["output_tokens"] == sum(t["output_tokens"] for t in doc["turns"]) == 2 + 2 + 1 + 2
    assert totals["seconds"] is not None and totals["seconds"] >= 0
    started, finished = datetime.fromisoformat(doc["started_at"]), datetime.fromisoformat(doc["finished_at"])
    assert started <= datetime.fromisoformat(doc["turns"][0]["started_at"]) <= finished

    # Markdown: turn order and labels.
    md = to_markdown(doc)
    order = [md.index(f"### Turn {n} — {who} (scripted/{who.lower()})\n\n{text}\n")
             for n, who, text in [(1, "Alice", "Hi Bob."), (2, "Bob", "Hello Alice."), (3, "Alice", "Indeed."),
                                  (4, "Bob", "Quite so.")]]
    assert order == sorted(order)
    assert "— stopped" not in md and "— failed" not in md

    # PDF: real text, the system prompt escaped.
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; Be curt" in to_html(doc)
    pdf = await asyncio.to_thread(to_pdf, duet_export, doc)
    assert pdf.startswith(b"%PDF")
    text = pdf_text(pdf)
    if text is None:
        pytest.skip("pdftotext (apt-get install poppler-utils) is not installed to read the PDF")
    words = " ".join(text.split())
    assert "Duet: Tea or coffee?" in words
    for phrase in ("Turn 1 — Alice (scripted/alice) Hi Bob.", "Turn 2 — Bob (scripted/bob) Hello Alice.",
                   "Turn 3 — Alice (scripted/alice) Indeed.", "Turn 4 — Bob (scripted/bob) Quite so.",
                   "<script>alert('x')</script> Be curt"):
        assert phrase in words
    assert filename(doc, "pdf") == "duet-tea-or-coffee.pdf"


async def test_a_mid_run_change_is_in_the_json_and_markdown(lantern: Any) -> None:
    scripted = lantern.registry.scripted
    scripted.add_script("alice", ["Hi Bob, shall we talk about tea?", "Green tea, then."], delay=0.02, chunk=3)
    scripted.add_script("bob", ["Hello Alice, gladly, tea it is.", "Agreed, green."], delay=0.02, chunk=3)
    service = duet_service(lantern)
    active = await service.start(user_id="local", topic="Tea", turns=4, agents=[
        agent("Alice", "scripted/alice", "Be brief", 0.5), agent("Bob", "scripted/bob", "Be curt", 0.5)])
    async for _, event in lantern.runs.subscribe(active.run.id):
        if isinstance(event, TextDelta) and event.agent == "Bob":  # Bob is speaking his first turn (turn 2)
            await service.update_agent(user_id="local", run_id=active.run.id, index=1, changes={"temperature": 1.2})
            break
    await drain(lantern, active.run.id)
    doc = document(await load(lantern, active.run.id))

    assert doc["status"] == "completed"
    assert [c["changes"] for c in doc["changes"]] == [{"temperature": 1.2}]
    change = doc["changes"][0]
    assert (change["before_turn"], change["agent_index"], change["agent"]) == (3, 1, "Bob")  # his next turn
    assert datetime.fromisoformat(change["at"]).tzinfo is not None
    assert doc["agents_at_start"][1]["temperature"] == 0.5 and doc["agents_at_end"][1]["temperature"] == 1.2
    assert json.loads(to_json(doc))["changes"] == doc["changes"]
    md = to_markdown(doc)
    line = "> ✎ Bob's temperature changed to 1.2 (from turn 4)"
    assert md.index("### Turn 3 — Alice") < md.index(line) < md.index("### Turn 4 — Bob")


async def test_a_running_duet_exports_so_far_and_a_stopped_one_keeps_its_partial_turn(lantern: Any) -> None:
    scripted = lantern.registry.scripted
    scripted.add_script("alice", ["Hi Bob."])
    scripted.add_script("bob", ["word " * 200], delay=0.02, chunk=5)
    active = await duet_service(lantern).start(user_id="local", topic="Words", turns=4, agents=[
        agent("Alice", "scripted/alice", "", 0.5), agent("Bob", "scripted/bob", "", 0.5)])
    async for _, event in lantern.runs.subscribe(active.run.id):
        if isinstance(event, TextDelta) and event.agent == "Bob":
            break

    live = document(active.run, active=lantern.runs.active[active.run.id])
    assert live["status"] == "running" and live["finished_at"] is None
    assert [(t["agent"], t["status"]) for t in live["turns"]] == [("Alice", "completed"), ("Bob", "running")]
    assert live["turns"][1]["content"].startswith("word")
    assert live["totals"]["turns"] == 2 and live["totals"]["seconds"] is None
    assert "### Turn 2 — Bob (scripted/bob) — still generating" in to_markdown(live)
    # Without the live run, the stored row has no transcript yet, and says so.
    stored = document(await load(lantern, active.run.id))
    assert stored["status"] == "running" and stored["turns"] == []

    await lantern.runs.stop(active.run.id)
    doc = document(await load(lantern, active.run.id))
    assert doc["status"] == "stopped" and doc["finished_at"] is not None
    assert [(t["agent"], t["status"]) for t in doc["turns"]] == [("Alice", "completed"), ("Bob", "stopped")]
    partial = doc["turns"][1]["content"]
    assert partial.startswith("word") and len(partial) < len("word " * 200)
    md = to_markdown(doc)
    assert f"### Turn 2 — Bob (scripted/bob) — stopped\n\n{partial}\n" in md


async def test_a_continued_duet_names_its_origin_and_keeps_the_earlier_turns(lantern: Any) -> None:
    scripted = lantern.registry.scripted
    scripted.add_script("alice", ["One.", "Three."])
    scripted.add_script("bob", ["Two.", "Four."])
    agents = [agent("Alice", "scripted/alice", "", 0.5), agent("Bob", "scripted/bob", "", 0.5)]
    service = duet_service(lantern)
    first = await service.start(user_id="local", topic="Counting", turns=2, agents=agents)
    await drain(lantern, first.run.id)
    more = await service.start(user_id="local", topic="Counting", turns=2, agents=agents, continue_from=first.run.id)
    await drain(lantern, more.run.id)
    doc = document(await load(lantern, more.run.id))
    assert doc["continue_from"] == first.run.id
    assert [(t["turn"], t["content"]) for t in doc["turns"]] == [(0, "One."), (1, "Two."), (2, "Three."), (3, "Four.")]
    md = to_markdown(doc)
    assert f"_Continues duet `{first.run.id}`: its turns come first._" in md
    assert md.index("### Turn 1 — Alice") < md.index("### Turn 4 — Bob")


# --- helpers ------------------------------------------------------------------------------------------


def agent(name: str, model: str, prompt: str, temperature: float) -> dict[str, Any]:
    return {"name": name, "model": model, "system_prompt": prompt, "temperature": temperature}


def duet_service(lantern: Any) -> DuetService:
    """The app's duet service, or one built on the same database, registry and run manager."""
    service = getattr(lantern, "duet", None)
    return service if service is not None else DuetService(db=lantern.db, registry=lantern.registry,
                                                           runs=lantern.runs)


async def drain(lantern: Any, run_id: str) -> None:
    async for _ in lantern.runs.subscribe(run_id):
        pass


async def load(lantern: Any, run_id: str) -> Run:
    run = await lantern.db.call(run_repo.get_run, run_id=run_id)
    assert run is not None
    return run


def pdf_text(pdf: bytes) -> str | None:
    """The PDF's text via poppler's pdftotext, or None when it is not installed."""
    if not shutil.which("pdftotext"):
        return None
    return subprocess.run(["pdftotext", "-enc", "UTF-8", "-", "-"], input=pdf, capture_output=True,
                          check=True).stdout.decode()


def stored_agents() -> list[dict[str, Any]]:
    return [{"name": "Alice", "model": "scripted/alice", "system_prompt": "Be brief.", "temperature": 0.5,
             "max_tokens": 256},
            {"name": "Bob", "model": "scripted/bob", "system_prompt": "Be <b>curt</b>.\nAlways.", "temperature": 0.9,
             "max_tokens": 256}]


def stored_turn(n: int, content: str, status: str = "completed", **figures: Any) -> dict[str, Any]:
    index = n % 2
    return {"turn": n, "agent_index": index, "agent": ["Alice", "Bob"][index],
            "model": ["scripted/alice", "scripted/bob"][index], "content": content, "status": status,
            "seconds": 0.4, "input_tokens": 10, "output_tokens": 3, "cost_usd": 0.003,
            "started_at": (WHEN + timedelta(seconds=2 * n)).isoformat(), **figures}


def stored_result() -> dict[str, Any]:
    end = stored_agents()
    end[1]["temperature"] = 1.2
    return {
        "topic": "Is SQL a language?",
        "agents": end,
        "turns": [stored_turn(0, "Is SQL a language?", input_tokens=4, output_tokens=2, cost_usd=0.0021,
                              secret="not-exported"),
                  stored_turn(1, "Yes, **declarative**."),
                  stored_turn(2, "Declarative how?"),
                  stored_turn(3, "Like this:\n\n```sql\nSELECT 1", status="stopped", seconds=0.2)],
        "changes": [{"before_turn": 3, "agent_index": 1, "agent": "Bob", "changes": {"temperature": 1.2},
                     "at": "2025-06-01T12:00:05+00:00"}],
    }


def stored_run(**overrides: Any) -> Run:
    """A stopped four-turn duet whose Bob was steered before his last turn, as the run manager stores it."""
    values: dict[str, Any] = {
        "id": "r1", "trace_id": "t1", "user_id": "user-42", "kind": "duet", "status": "stopped",
        "config": {"topic": "Is SQL a language?", "turns": 4, "agents": stored_agents()},
        "result": stored_result(), "input_tokens": 40, "output_tokens": 12, "cost_usd": 0.0123,
        "started_at": WHEN, "finished_at": WHEN + timedelta(seconds=7.5)}
    values.update(overrides)
    return Run(**values)
