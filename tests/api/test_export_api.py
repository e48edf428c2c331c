"""`GET /api/conversations/{id}/export` as a client sees it: the file, its type and its name."""

from __future__ import annotations

import sys

import pytest
from nicegui.testing import User


async def new_conversation(user: User) -> str:
    body = {"messages": [{"role": "user", "content": "Hi there"}], "model": "scripted/hello"}
    response = await user.http_client.post("/api/chat", json=body)
    assert response.status_code == 200 and response.json()["status"] == "completed"
    return str(response.json()["conversation_id"])


async def test_markdown_is_the_default(user: User) -> None:
    conv_id = await new_conversation(user)
    for params in ({}, {"format": "md"}):
        response = await user.http_client.get(f"/api/conversations/{conv_id}/export", params=params)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/markdown; charset=utf-8"
        assert response.headers["content-disposition"] == 'attachment; filename="hi-there.md"'
        assert response.text.startswith("# Hi there\n")
        assert "## You\n" in response.text and "## Assistant (scripted/hello)\n" in response.text
        assert "Hello! I am a **scripted** model." in response.text


async def test_json_is_the_whole_document(user: User) -> None:
    conv_id = await new_conversation(user)
    response = await user.http_client.get(f"/api/conversations/{conv_id}/export", params={"format": "json"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-disposition"] == 'attachment; filename="hi-there.json"'
    doc = response.json()
    assert doc["format"] == "lantern.conversation" and doc["id"] == conv_id
    assert [m["role"] for m in doc["messages"]] == ["user", "assistant"]
    assert doc["current_path"] == [m["id"] for m in doc["messages"]]


async def test_pdf_is_a_pdf_file(user: User) -> None:
    conv_id = await new_conversation(user)
    response = await user.http_client.get(f"/api/conversations/{conv_id}/export", params={"format": "pdf"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == 'attachment; filename="hi-there.pdf"'
    assert response.content.startswith(b"%PDF") and response.content.rstrip().endswith(b"%%EOF")


async def test_unknown_conversation_and_format(user: User) -> None:
    missing = await user.http_client.get("/api/conversations/nope/export")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"
    conv_id = await new_conversation(user)
    docx = await user.http_client.get(f"/api/conversations/{conv_id}/export", params={"format": "docx"})
    assert docx.status_code == 422
    error = docx.json()["error"]
    assert error["type"] == "validation" and "format" in error["message"]
    assert error["fields"][0]["field"].endswith("format")


async def test_pdf_without_weasyprint_says_what_to_install(user: User, monkeypatch: pytest.MonkeyPatch) -> None:
    conv_id = await new_conversation(user)
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # as if it were not installed
    response = await user.http_client.get(f"/api/conversations/{conv_id}/export", params={"format": "pdf"})
    assert response.status_code == 501
    assert response.json()["error"]["type"] == "export_unavailable"
    assert "weasyprint" in response.json()["error"]["message"]
    # The other formats do not need it.
    assert (await user.http_client.get(f"/api/conversations/{conv_id}/export")).status_code == 200
