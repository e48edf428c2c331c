"""Every kind of run exports the same way: md, json and pdf, one media-type table, one safe file name."""

from __future__ import annotations

import json
from typing import Any

import pytest
from nicegui.testing import User

from services.kinds import KINDS
from tests.api.test_api import parse_sse
from tests.api.test_runs_api import duet_body
from tests.services.test_export import pdf_text

MEDIA = {"md": "text/markdown; charset=utf-8", "json": "application/json", "pdf": "application/pdf"}
BRIEF = {"brand": "Lumen", "product": "Solar lantern", "audience": "campers", "goal": "pre-orders"}
CODE_REPLY = "Here:\n\n```python\nprint('lit')\n```\n"


async def start(user: User, kind: str) -> str:
    """A finished run of `kind`, started the way a client would."""
    client = user.http_client
    if kind == "chat":
        started = await client.post("/api/chat", json={"messages": [{"role": "user", "content": "Tea or coffee?"}],
                                                        "model": "scripted/echo"})
        run_id = started.json()["run_id"]
    else:
        body: dict[str, Any] = {
            "duet": duet_body(),
            "pipeline": {"kind": "pipeline", "topic": "tides", "model": "scripted/echo", "definition": {
                "name": "one-liner", "roles": ["writer"],
                "steps": [{"id": "line", "title": "One line", "role": "writer", "prompt": "Write about {topic}."}]}},
            "deliverables": {"kind": "deliverables", "module": "launch", "brief": BRIEF, "model": "scripted/echo"},
        }[kind]
        created = await client.post("/api/runs", json=body)
        assert created.status_code == 201, created.text
        run_id = created.json()["run_id"]
    parse_sse((await client.get(f"/api/runs/{run_id}/events")).text)  # until it is done
    return run_id


def test_every_registered_kind_is_covered() -> None:
    assert KINDS.names() == ["chat", "duet", "pipeline", "deliverables"]


@pytest.mark.parametrize("kind", ["chat", "duet", "pipeline", "deliverables"])
async def test_each_kind_exports_md_json_and_pdf(user: User, kind: str) -> None:
    run_id = await start(user, kind)
    files = {}
    for fmt in ("md", "json", "pdf"):
        response = await user.http_client.get(f"/api/runs/{run_id}/export", params={"format": fmt})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == MEDIA[fmt]
        disposition = response.headers["content-disposition"]
        assert disposition.startswith("attachment;") and f'.{fmt}"' in disposition
        files[fmt] = response.content
    doc = json.loads(files["json"])
    assert files["json"].endswith(b"\n")  # the same JSON writer for every kind
    assert doc["id"] == run_id and doc["status"] == "completed"
    assert {"input_tokens", "output_tokens", "cost_usd"} <= set(doc["totals"])
    assert files["md"].decode().startswith("# ")
    assert files["pdf"].startswith(b"%PDF")
    text = pdf_text(files["pdf"])
    if text is None:
        pytest.skip("neither pdftotext nor pypdf is installed: the PDF's text was not read")
    first_heading = files["md"].decode().splitlines()[0].lstrip("# ").strip()
    assert first_heading.split(":")[0] in text


async def test_a_pipeline_pdf_has_the_code_styles(user: User) -> None:
    from services.export.formats import code_css
    from services.pipelines import export as pipeline_export

    run_id = await start(user, "pipeline")
    doc = json.loads((await user.http_client.get(f"/api/runs/{run_id}/export", params={"format": "json"})).text)
    doc["steps"][0]["response"] = CODE_REPLY
    page = pipeline_export.to_html(doc)
    assert code_css() in page and '<pre class="hl">' in page


async def test_an_unknown_format_is_refused(user: User) -> None:
    run_id = await start(user, "chat")
    response = await user.http_client.get(f"/api/runs/{run_id}/export", params={"format": "docx"})
    assert response.status_code == 422
