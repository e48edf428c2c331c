"""The pipeline engine with scripted models: order, loops, early stop, retries, failures, definitions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.core.errors import BadInput, NotFound, UnknownModel
from services.core.events import Done, StepFinished, StepStarted
from services.pipelines.definition import parse_definition
from storage import runs as run_repo

CATEGORIES = json.dumps({"categories": [{"name": "easy"}, {"name": "hard"}]})
QUESTION = json.dumps({"title": "Off by one", "difficulty": "hard",
                       "code": "for i in range(1, len(xs)):\n  print(xs[i])",
                       "errors": [{"id": "E1", "description": "skips the first element"}]})
JUDGE_YES = json.dumps({"strong_found": True, "weak_found": False, "differentiates": True, "reason": "A found E1"})
JUDGE_NO = json.dumps({"strong_found": True, "weak_found": True, "differentiates": False, "reason": "both found"})
MODELS = {"generator": "scripted/gen", "strong": "scripted/strong", "weak": "scripted/weak", "judge": "scripted/judge"}


def script(lantern: Any, *, judge: list[str], gen: list[str] | None = None) -> None:
    scripted = lantern.registry.scripted
    scripted.add_script("gen", gen or [CATEGORIES, QUESTION, QUESTION, QUESTION])
    scripted.add_script("strong", ["E1: the loop starts at 1, skipping xs[0]."])
    scripted.add_script("weak", ["Looks fine to me."])
    scripted.add_script("judge", judge)


async def run(lantern: Any, **kwargs: Any) -> tuple[list[Any], Any]:
    active = await lantern.pipelines.start(user_id="local", topic="Python loops", models=MODELS, **kwargs)
    events = [e async for _, e in lantern.runs.subscribe(active.run.id)]
    return events, await lantern.db.call(run_repo.get_run, run_id=active.run.id)


async def test_assessment_steps_run_in_order_and_produce_the_assessment(lantern: Any) -> None:
    script(lantern, judge=[JUDGE_YES])
    events, stored = await run(lantern)
    started = [e for e in events if isinstance(e, StepStarted)]
    assert [e.title for e in started] == ["Difficulty categories", "Write a question", "Strong model answers",
                                          "Weak model answers", "Judge both answers"]
    assert [e.model for e in started] == ["scripted/gen", "scripted/gen", "scripted/strong", "scripted/weak",
                                          "scripted/judge"]
    assert "for i in range(1, len(xs))" in started[2].prompt  # earlier outputs reach later prompts
    assert "Looks fine to me." in started[4].prompt
    finished = [e for e in events if isinstance(e, StepFinished)]
    assert [e.index for e in finished] == [0, 1, 2, 3, 4] and all(e.ok for e in finished)
    assert events[-1] == Done(status="completed", run_id=stored.id)
    outcome = stored.result["outcome"]
    assert outcome["ok"] and outcome["result"]["title"] == "Off by one"
    assert outcome["result"]["errors"] == [{"id": "E1", "description": "skips the first element"}]
    assert [s["status"] for s in stored.result["steps"]] == ["completed"] * 5


async def test_a_question_that_does_not_differentiate_is_retried_then_stops_early(lantern: Any) -> None:
    script(lantern, judge=[JUDGE_NO])
    events, stored = await run(lantern, max_attempts=2)
    titles = [e.title for e in events if isinstance(e, StepStarted)]
    assert titles[5:] == ["Write a question (attempt 2)", "Strong model answers (attempt 2)",
                          "Weak model answers (attempt 2)", "Judge both answers (attempt 2)"]
    assert stored.status == "completed" and stored.result["outcome"]["ok"] is False
    assert "never true in 2 attempts" in stored.result["outcome"]["reason"]


async def test_the_loop_ends_as_soon_as_a_question_differentiates(lantern: Any) -> None:
    script(lantern, judge=[JUDGE_NO, JUDGE_YES])
    events, stored = await run(lantern, max_attempts=3)
    assert sum(isinstance(e, StepStarted) for e in events) == 9
    assert stored.result["outcome"]["ok"] is True


async def test_invalid_json_is_retried_then_fails_visibly_with_the_raw_output(lantern: Any) -> None:
    script(lantern, judge=[JUDGE_YES], gen=["Sure! Here are some categories: easy, hard."])
    events, stored = await run(lantern)
    finished = [e for e in events if isinstance(e, StepFinished)]
    assert [(e.ok, e.error) for e in finished] == [(False, "not valid JSON (Expecting value)")] * 2
    assert [e.title for e in events if isinstance(e, StepStarted)] == [
        "Difficulty categories", "Difficulty categories — retry 1"]
    assert "Your previous reply was invalid" in [e for e in events if isinstance(e, StepStarted)][1].prompt
    assert stored.status == "failed" and "failed after 2 tries" in stored.error
    assert [s["response"] for s in stored.result["steps"]] == ["Sure! Here are some categories: easy, hard."] * 2


async def test_missing_fields_are_invalid_too(lantern: Any) -> None:
    script(lantern, judge=[JUDGE_YES], gen=[json.dumps({"cats": []})])
    events, stored = await run(lantern)
    assert {e.error for e in events if isinstance(e, StepFinished)} == {"field 'categories' is missing"}
    assert stored.status == "failed"


@pytest.mark.parametrize(("kwargs", "error", "says"), [
    ({"topic": " "}, BadInput, "topic is empty"),
    ({"pipeline": "nope"}, NotFound, "No pipeline 'nope'"),
    ({"models": {**MODELS, "critic": "scripted/echo"}}, BadInput, "unknown role"),
    ({"models": {**MODELS, "judge": "nope/x"}}, UnknownModel, "nope/x"),
    ({"max_attempts": 0}, BadInput, "max_attempts"),
])
async def test_bad_requests_are_refused_and_store_nothing(lantern: Any, kwargs: dict[str, Any],
                                                          error: type[Exception], says: str) -> None:
    script(lantern, judge=[JUDGE_YES])
    args = {"user_id": "local", "topic": "T", "models": MODELS, **kwargs}
    with pytest.raises(error, match=says):
        await lantern.pipelines.start(**args)
    assert await lantern.db.call(run_repo.list_runs, user_id="local") == []


GOOD = """
name: summarise
roles: [writer]
steps:
  - id: draft
    title: Draft
    role: writer
    prompt: Summarise {topic} in one line.
  - id: polish
    title: Polish
    role: writer
    prompt: "Polish this: {steps.draft}"
"""


@pytest.mark.parametrize(("source", "says"), [
    (GOOD.replace("title: Polish", "title: Polish\n    colour: red"), "line 11: steps[1].colour: Extra inputs"),
    (GOOD.replace("    prompt: Summarise {topic} in one line.\n", ""), "line 5: steps[0].prompt: Field required"),
    (GOOD.replace("Summarise {topic}", "Summarise {steps.polish}"),
     "line 5: steps[0] (draft).prompt: refers to step 'polish', which comes later"),
    (GOOD.replace("{steps.draft}", "{steps.nothing}"), "refers to step 'nothing', which does not exist"),
    (GOOD.replace("role: writer\n    prompt: \"Polish", "role: editor\n    prompt: \"Polish"),
     "'editor' is not one of roles"),
    (GOOD.replace("{topic} in", "{subject} in"), "unknown placeholder {subject}"),
    ("name: x\nroles: [a\n", "line 3"),
    ('{"name": "x",}', "line 1"),
])
def test_malformed_definitions_are_refused_naming_the_place(source: str, says: str) -> None:
    with pytest.raises(BadInput, match=None) as info:
        parse_definition(source)
    assert says in str(info.value), str(info.value)


async def test_saved_and_ad_hoc_definitions_run(lantern: Any) -> None:
    lantern.registry.scripted.add_script("writer", ["A line.", "A polished line."])
    saved = await lantern.pipelines.save(user_id="local", source=GOOD)
    assert saved.name == "summarise" and "summarise" in await lantern.pipelines.names("local")
    active = await lantern.pipelines.start(user_id="local", topic="tides", pipeline="summarise",
                                           model="scripted/writer")
    _ = [e async for e in lantern.runs.subscribe(active.run.id)]
    stored = await lantern.db.call(run_repo.get_run, run_id=active.run.id)
    assert stored.result["outcome"] == {"ok": True, "reason": None, "result": "A polished line."}
    with pytest.raises(BadInput, match="built-in"):
        await lantern.pipelines.save(user_id="local", source=GOOD.replace("name: summarise", "name: assessment"))
    adhoc = await lantern.pipelines.start(user_id="local", topic="t", definition=parse_definition(GOOD).model_dump(),
                                          model="scripted/echo")
    assert adhoc.run.config["pipeline"] == "summarise"


async def test_export_is_a_readable_trace_and_a_lossless_json(lantern: Any) -> None:
    from services.export.formats import to_json
    from services.pipelines import export as pipeline_export

    script(lantern, judge=[JUDGE_YES])
    _events, stored = await run(lantern)
    doc = pipeline_export.document(stored)
    assert doc["steps"][0]["title"] == "Difficulty categories"
    assert doc["steps"][1]["parsed"]["title"] == "Off by one" and doc["models"]["judge"] == "scripted/judge"
    assert json.loads(to_json(doc))["outcome"]["ok"] is True
    markdown = pipeline_export.to_markdown(doc)
    assert markdown.index("## 1. Difficulty categories") < markdown.index("## 5. Judge both answers")
    assert "**Prompt**" in markdown and "### Off by one" in markdown and "**E1**: skips the first element" in markdown
