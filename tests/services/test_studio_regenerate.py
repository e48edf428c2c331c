"""Regenerating a deliverable is a run like any generation: admitted under the rate limit, counted, stoppable."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.context import Lantern
from app.settings import Settings
from services.core.errors import RateLimited
from services.core.events import TextDelta
from services.studio.service import RewriteStopped
from storage import runs as run_repo
from storage import users as user_repo

BRIEF = {"brand": "Lumen", "product": "Solar lantern", "audience": "campers", "goal": "pre-orders"}
DRAFT = json.dumps({"title": "Post", "content_markdown": "Light for every campsite.", "hashtags": ["camping"]})
SHORTER = json.dumps({"title": "Post", "content_markdown": "Light, anywhere.", "hashtags": []})


async def generate(lantern: Any, user_id: str = "local") -> str:
    """A social calendar (three deliverables) drafted with `scripted/studio_rw`; the x_post's id."""
    active = await lantern.studio.start(user_id=user_id, module="social_calendar", brief=BRIEF,
                                        model="scripted/studio_rw")
    assert await lantern.runs.wait(active.run.id) == "completed"
    run = await lantern.db.call(run_repo.get_run, run_id=active.run.id)
    return str(run.result["deliverables"][2]["id"])


async def rewrite_runs(lantern: Any, user_id: str = "local") -> list[Any]:
    """The user's stored rewrite runs, newest first."""
    runs = await lantern.db.call(run_repo.list_runs, user_id=user_id, kind="deliverables")
    return [r for r in runs if r.config.get("regenerate")]


@pytest.fixture
async def limited(db_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Lantern]:
    """Shared mode allowing two runs a minute per person, with one account `ann`."""
    monkeypatch.setenv("LANTERN_REQUIRE_LOGIN", "1")
    monkeypatch.setenv("LANTERN_RUNS_PER_MINUTE", "2")
    instance = Lantern.create(Settings(DATABASE_URL=db_url))
    await instance.startup()
    yield instance
    await instance.shutdown()


async def test_a_rewrite_is_refused_once_the_rate_limit_is_used_up(limited: Lantern) -> None:
    ann = (await limited.db.call(user_repo.add_user, name="ann", password_hash="x")).id
    limited.registry.scripted.add_script("studio_rw", [DRAFT, DRAFT, DRAFT, SHORTER])
    target = await generate(limited, ann)  # the first run of the minute
    await limited.studio.regenerate(user_id=ann, deliverable_id=target, instruction="shorter")  # the second
    with pytest.raises(RateLimited, match="Too many runs this minute"):
        await limited.studio.regenerate(user_id=ann, deliverable_id=target, instruction="shorter still")
    item = await limited.studio.get(user_id=ann, deliverable_id=target)
    assert [v["note"] for v in item["versions"]] == ["generated", "regenerated: shorter"]
    assert len(await rewrite_runs(limited, ann)) == 1  # nothing stored for the refused one


async def test_a_rewrite_is_a_run_with_its_usage_stored(lantern: Any) -> None:
    lantern.registry.scripted.add_script("studio_rw", [DRAFT, DRAFT, DRAFT, SHORTER])
    target = await generate(lantern)
    updated = await lantern.studio.regenerate(user_id="local", deliverable_id=target, instruction="make it shorter")
    assert updated["versions"][-1]["content_markdown"] == "Light, anywhere."
    [run] = await rewrite_runs(lantern)
    assert run.status == "completed" and run.config["regenerate"]["instruction"] == "make it shorter"
    prompt = lantern.registry.scripted.requests[-1].messages[0].content
    # What the scripted model reports for this call: the prompt's words in, the reply's words out.
    assert (run.input_tokens, run.output_tokens) == (len(prompt.split()), len(SHORTER.split()))
    assert run.result["status"] == "SUCCESS" and run.result["deliverables"][0]["id"] == target
    assert run.result["meta"]["tokens_used"] == run.input_tokens + run.output_tokens


async def test_a_rewrite_stops_at_once_and_keeps_the_deliverable_and_the_usage(lantern: Any) -> None:
    lantern.registry.scripted.add_script("studio_rw", [DRAFT, DRAFT, DRAFT, {"text": "Light, any", "hang": True}])
    target = await generate(lantern)
    active = await lantern.studio.start_regenerate(user_id="local", deliverable_id=target, instruction="shorter")
    async for _seq, event in lantern.runs.subscribe(active.run.id):
        if isinstance(event, TextDelta):  # the model is writing (and then hangs)
            break
    waiting = asyncio.ensure_future(lantern.studio.regenerated(user_id="local", active=active))
    assert await lantern.runs.stop(active.run.id)
    with pytest.raises(RewriteStopped, match="unchanged"):
        await asyncio.wait_for(waiting, timeout=5)
    [run] = await rewrite_runs(lantern)
    assert run.status == "stopped" and run.output_tokens > 0  # what it streamed is kept, estimated
    item = await lantern.studio.get(user_id="local", deliverable_id=target)
    assert [v["version"] for v in item["versions"]] == [1]
