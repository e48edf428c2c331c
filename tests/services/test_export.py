"""Conversation export in JSON (every branch), Markdown and PDF (current branch), on a real database."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest
from markdown_it import MarkdownIt

from services.core.errors import ExportUnavailable
from services.export import conversation as conversation_export
from services.export.conversation import (
    conversation_document,
    filename,
    to_html,
    to_markdown,
)
from services.export.formats import to_json, to_pdf
from storage import conversations as conv_repo

MESSAGE_KEYS = {"id", "parent_id", "position", "role", "content", "status", "provider", "model", "input_tokens",
                "output_tokens", "cost_usd", "run_id", "extra", "created_at"}


async def reply(lantern: Any, start: Any) -> None:
    async for _ in lantern.runs.subscribe(start.run.id):
        pass


async def two_replies(lantern: Any) -> tuple[str, Any, Any]:
    """A question answered twice (regenerated): two sibling replies, the second one current."""
    lantern.registry.scripted.add_script("twice", ["First answer about tables.", "Second answer with **bold**."])
    first = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "Which index?"}],
                                     model="scripted/twice")
    await reply(lantern, first)
    second = await lantern.chat.regenerate(user_id="local", conversation_id=first.conversation_id,
                                           model="scripted/twice")
    await reply(lantern, second)
    await lantern.db.call(conv_repo.update_message, message_id=second.message_id, cost_usd=0.0123)
    return first.conversation_id, first, second


async def document(lantern: Any, conversation_id: str) -> dict[str, Any]:
    doc = await lantern.db.call(conversation_document, conversation_id=conversation_id, user_id="local")
    assert doc is not None
    return doc


def as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def pdf_text(pdf: bytes) -> str | None:
    """The PDF's text via poppler's pdftotext or pypdf, or None when neither is installed."""
    if shutil.which("pdftotext"):
        return subprocess.run(["pdftotext", "-enc", "UTF-8", "-", "-"], input=pdf, capture_output=True,
                              check=True).stdout.decode()
    try:
        from pypdf import PdfReader
    except ImportError:
        return None
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


async def test_json_keeps_every_branch_with_usage_and_timestamps(lantern: Any) -> None:
    conv_id, first, second = await two_replies(lantern)
    doc = await document(lantern, conv_id)
    assert json.loads(to_json(doc)) == doc
    assert (doc["format"], doc["version"]) == ("lantern.conversation", 1)
    assert datetime.fromisoformat(doc["exported_at"]).tzinfo is not None

    stored = await lantern.db.call(conv_repo.list_messages, conversation_id=conv_id)
    question = stored[0]
    assert [m["content"] for m in doc["messages"]] == [
        "Which index?", "First answer about tables.", "Second answer with **bold**."]
    assert [m["parent_id"] for m in doc["messages"]] == [None, question.id, question.id]
    assert doc["current_path"] == [question.id, second.message_id]
    assert doc["leaf_id"] == second.message_id
    assert doc["title"] == "Which index?" and doc["model"] == "scripted/twice"
    assert set(doc) == {"format", "version", "exported_at", "id", "title", "model", "system_prompt", "temperature",
                        "created_at", "updated_at", "leaf_id", "messages", "current_path"}  # no user_id
    for exported, row in zip(doc["messages"], stored, strict=True):
        assert set(exported) == MESSAGE_KEYS
        assert datetime.fromisoformat(exported["created_at"]) == as_utc(row.created_at)
        assert (exported["input_tokens"], exported["output_tokens"], exported["cost_usd"], exported["run_id"]) == (
            row.input_tokens, row.output_tokens, row.cost_usd, row.run_id)
    replies = doc["messages"][1:]
    assert [r["run_id"] for r in replies] == [first.run.id, second.run.id]
    assert replies[1]["cost_usd"] == 0.0123 and replies[1]["output_tokens"] == 4
    assert all(r["status"] == "completed" and r["provider"] == "scripted" for r in replies)


async def test_only_the_owner_gets_a_document(lantern: Any) -> None:
    conv_id, _, _ = await two_replies(lantern)
    assert await lantern.db.call(conversation_document, conversation_id=conv_id, user_id="someone") is None
    assert await lantern.db.call(conversation_document, conversation_id="nope", user_id="local") is None


async def test_markdown_has_the_current_branch_only(lantern: Any) -> None:
    conv_id, first, _ = await two_replies(lantern)
    md = to_markdown(await document(lantern, conv_id))
    assert md.startswith("# Which index?\n")
    assert "Model: scripted/twice" in md
    assert "## You\n" in md and "## Assistant (scripted/twice)\n" in md
    assert "Second answer with **bold**." in md and "First answer" not in md
    assert "2 in / 4 out tokens · $0.0123" in md
    # Choosing the other branch changes what is exported.
    await lantern.db.call(conv_repo.select_branch, conversation_id=conv_id, user_id="local",
                          message_id=first.message_id)
    md = to_markdown(await document(lantern, conv_id))
    assert "First answer about tables." in md and "Second answer" not in md


async def test_markdown_marks_failed_replies_and_keeps_content_verbatim(lantern: Any) -> None:
    start = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "Go"}],
                                     model="scripted/broken")
    await reply(lantern, start)
    md = to_markdown(await document(lantern, start.conversation_id))
    assert "## Assistant (scripted/broken) — failed\n" in md
    assert "Partial answer" in md and "> Error: upstream went away" in md

    hello = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "Hi"}],
                                     model="scripted/hello")
    await reply(lantern, hello)
    md = to_markdown(await document(lantern, hello.conversation_id))
    assert "Hello! I am a **scripted** model.\n\nHere is a list:\n\n- one\n- two\n" in md
    assert "— " not in md.split("## Assistant", 1)[1].splitlines()[0]  # completed: no status mark


async def test_markdown_closes_a_code_block_a_reply_left_open(lantern: Any) -> None:
    lantern.registry.scripted.add_script("cut", ["Try:\n\n```python\nprint('hi')\n"])
    start = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "Code?"}],
                                     model="scripted/cut")
    await reply(lantern, start)
    again = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "More"}],
                                     model="scripted/echo", conversation_id=start.conversation_id)
    await reply(lantern, again)
    md = to_markdown(await document(lantern, start.conversation_id))
    tokens = MarkdownIt("commonmark").parse(md)
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open" and t.tag == "h2"]
    assert headings == ["You", "Assistant (scripted/cut)", "You", "Assistant (scripted/echo)"]


async def test_pdf_has_the_conversation_as_real_text(lantern: Any) -> None:
    conv_id, _, _ = await two_replies(lantern)
    pdf = await asyncio.to_thread(to_pdf, conversation_export, await document(lantern, conv_id))
    assert pdf.startswith(b"%PDF")
    text = pdf_text(pdf)
    if text is None:
        pytest.skip("neither pdftotext (apt-get install poppler-utils) nor pypdf is installed to read the PDF")
    words = " ".join(text.split())
    assert "Which index?" in words and "Second answer with bold." in words
    assert "First answer" not in words
    assert "2 in / 4 out tokens · $0.0123" in words


async def test_html_in_messages_is_escaped_in_the_pdf(lantern: Any) -> None:
    start = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "<b>bold?</b> & more"}],
                                     model="scripted/xss")
    await reply(lantern, start)
    doc = await document(lantern, start.conversation_id)
    html = to_html(doc)
    body = html.split("<body>", 1)[1]
    assert "<script" not in body and "<img" not in body and "href=\"javascript" not in body
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in body
    assert "&lt;img src=x onerror=" in body
    assert "&lt;b&gt;bold?&lt;/b&gt; &amp; more" in body
    text = pdf_text(await asyncio.to_thread(to_pdf, conversation_export, doc))
    if text is None:
        pytest.skip("neither pdftotext (apt-get install poppler-utils) nor pypdf is installed to read the PDF")
    assert "<script>window.__xss = 1</script>" in text and "<b>bold?</b> & more" in text


def test_code_blocks_are_highlighted_and_images_not_fetched() -> None:
    doc = make_doc("Code", "```python\nprint(1)\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n![chart](http://10.0.0.1/c.png)")
    body = to_html(doc).split("<body>", 1)[1]
    assert '<pre class="hl"><code><span class="nb">print</span>' in body
    assert "<table>" in body and "<td>1</td>" in body
    assert "<img" not in body and "[image: chart — http://10.0.0.1/c.png]" in body


def test_missing_weasyprint_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # as if it were not installed
    with pytest.raises(ExportUnavailable) as info:
        to_pdf(conversation_export, make_doc("Hi", "Hello"))
    assert info.value.kind == "export_unavailable"
    assert "pip install 'weasyprint>=62'" in str(info.value) and "libpango-1.0-0" in str(info.value)


@pytest.mark.parametrize(("title", "fmt", "expected"), [
    ("Which index?", "md", "which-index.md"),
    ("Über «SQL» / ../../etc/passwd", "pdf", "uber-sql-etc-passwd.pdf"),
    ('a "quoted"\r\nheader', "json", "a-quoted-header.json"),
    ("日本語", "md", "conversation.md"),
    ("x" * 200, "md", "x" * 60 + ".md"),
])
def test_filename_is_a_safe_slug(title: str, fmt: str, expected: str) -> None:
    assert filename(make_doc(title, "."), fmt) == expected


def make_doc(title: str, reply_text: str) -> dict[str, Any]:
    """A small document without a database, for the pure renderers."""
    when = "2025-06-01T12:00:00+00:00"
    msg = {"parent_id": None, "position": 0, "status": "completed", "provider": "scripted", "model": "scripted/x",
           "input_tokens": 1, "output_tokens": 1, "cost_usd": 0.0, "run_id": None, "extra": {}, "created_at": when}
    return {"format": "lantern.conversation", "version": 1, "exported_at": when,
            "id": "c", "title": title, "model": "scripted/x", "system_prompt": None, "temperature": None,
            "created_at": when, "updated_at": when, "leaf_id": "a",
            "messages": [{**msg, "id": "q", "role": "user", "content": "Question"},
                         {**msg, "id": "a", "parent_id": "q", "position": 1, "role": "assistant",
                          "content": reply_text}],
            "current_path": ["q", "a"]}
