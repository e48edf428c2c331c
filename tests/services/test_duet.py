"""Duets with scripted bots: alternating turns, each bot's view, steering, stop, continue, caps."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.core.errors import BadInput, Conflict, NotFound, UnknownModel
from services.core.events import Done, TextDelta, TurnFinished
from storage import runs as run_repo


def bots(**overrides: Any) -> list[dict[str, Any]]:
    return [{"name": "Alice", "model": "scripted/alice", "system_prompt": "Be brief", "temperature": 0.5,
             **overrides},
            {"name": "Bob", "model": "scripted/bob", "system_prompt": "Be blunt", "temperature": 0.9}]


@pytest.fixture
def scripts(lantern: Any) -> Any:
    lantern.registry.scripted.add_script("alice", ["Hello Bob.", "Lovely weather.", "Bye."])
    lantern.registry.scripted.add_script("bob", ["Hi Alice.", "Rain soon.", "See you."])
    lantern.registry.scripted.add_script("slowpoke", ["word " * 200], delay=0.02, chunk=5)
    return lantern.registry.scripted


async def drain(lantern: Any, run_id: str) -> list[Any]:
    return [e async for _, e in lantern.runs.subscribe(run_id)]


async def test_turns_alternate_with_agent_labels_and_own_points_of_view(lantern: Any, scripts: Any) -> None:
    active = await lantern.duet.start(user_id="local", topic="The weather", turns=4, agents=bots())
    events = await drain(lantern, active.run.id)
    finished = [e for e in events if isinstance(e, TurnFinished)]
    assert [(t.turn, t.agent, t.content) for t in finished] == [
        (0, "Alice", "Hello Bob."), (1, "Bob", "Hi Alice."), (2, "Alice", "Lovely weather."), (3, "Bob", "Rain soon.")]
    assert {e.agent for e in events if isinstance(e, TextDelta)} == {"Alice", "Bob"}
    assert events[-1] == Done(status="completed", run_id=active.run.id)
    # Bob's second turn: his own turn as assistant, Alice's as user.
    bob_second = [r for r in scripts.requests if r.model == "bob"][1]
    assert [(m.role, m.content) for m in bob_second.messages] == [
        ("user", "Topic: The weather\n\nHello Bob."), ("assistant", "Hi Alice."), ("user", "Lovely weather.")]
    assert bob_second.system.startswith("Be blunt") and bob_second.temperature == 0.9
    run = await lantern.db.call(run_repo.get_run, run_id=active.run.id)
    assert run.status == "completed" and [t["agent"] for t in run.result["turns"]] == ["Alice", "Bob"] * 2


async def test_steering_applies_from_that_bots_next_turn_and_is_recorded(lantern: Any, scripts: Any) -> None:
    agents = bots()
    agents[1]["model"] = "scripted/slowpoke"
    active = await lantern.duet.start(user_id="local", topic="Pace", turns=4, agents=agents)
    async for _, event in lantern.runs.subscribe(active.run.id):
        if isinstance(event, TextDelta) and event.agent == "Bob":
            break  # Bob's first turn is under way
    await lantern.duet.update_agent(user_id="local", run_id=active.run.id, index=1,
                                    changes={"temperature": 1.3, "system_prompt": "Be kind"})
    await drain(lantern, active.run.id)
    bob = [r for r in scripts.requests if r.model == "slowpoke"]
    assert (bob[0].temperature, bob[1].temperature) == (0.9, 1.3)
    assert bob[1].system.startswith("Be kind")
    run = await lantern.db.call(run_repo.get_run, run_id=active.run.id)
    [change] = run.result["changes"]
    assert change["agent"] == "Bob" and change["before_turn"] == 3
    assert change["changes"] == {"temperature": 1.3, "system_prompt": "Be kind"}


async def test_stop_keeps_the_partial_turn_and_continue_adds_turns(lantern: Any, scripts: Any) -> None:
    agents = bots()
    agents[1]["model"] = "scripted/slowpoke"
    active = await lantern.duet.start(user_id="local", topic="Long", turns=4, agents=agents)
    async for _, event in lantern.runs.subscribe(active.run.id):
        if isinstance(event, TextDelta) and event.agent == "Bob":
            await asyncio.sleep(0.1)
            break
    assert await lantern.runs.stop(active.run.id)
    run = await lantern.db.call(run_repo.get_run, run_id=active.run.id)
    assert run.status == "stopped"
    partial = run.result["turns"][-1]
    assert partial["agent"] == "Bob" and partial["status"] == "stopped" and partial["content"].startswith("word")
    # Before: a stopped turn recorded 0 tokens and 0.0 s (issue #18).
    assert partial["model"] == "scripted/slowpoke" and partial["seconds"] > 0 and partial["output_tokens"] > 0
    more = await lantern.duet.start(user_id="local", topic="ignored", turns=2, agents=bots(),
                                    continue_from=active.run.id)
    events = await drain(lantern, more.run.id)
    assert [t.turn for t in events if isinstance(t, TurnFinished)] == [2, 3]
    run2 = await lantern.db.call(run_repo.get_run, run_id=more.run.id)
    assert [t["agent"] for t in run2.result["turns"]] == ["Alice", "Bob", "Alice", "Bob"]
    assert run2.config["continue_from"] == active.run.id and run2.config["topic"] == "Long"


@pytest.mark.parametrize(("kwargs", "error", "says"), [
    ({"turns": 0}, BadInput, "at least 1"),
    ({"turns": -3}, BadInput, "at least 1"),
    ({"turns": 41}, BadInput, "cap of 40"),
    ({"topic": "   "}, BadInput, "topic is empty"),
    ({"agents": bots(model="nope/x")}, UnknownModel, "nope/x"),
    ({"agents": bots()[:1]}, BadInput, "exactly two"),
    ({"agents": bots(name="Bob")}, BadInput, "different names"),
    ({"agents": bots(max_tokens=30_000), "turns": 4}, BadInput, "above this server.s cap"),
])
async def test_bad_configs_are_refused_and_store_nothing(lantern: Any, scripts: Any, kwargs: dict[str, Any],
                                                         error: type[Exception], says: str) -> None:
    args: dict[str, Any] = {"user_id": "local", "topic": "T", "turns": 2, "agents": bots(), **kwargs}
    with pytest.raises(error, match=says):
        await lantern.duet.start(**args)
    assert await lantern.db.call(run_repo.list_runs, user_id="local") == []


async def test_steering_a_finished_duet_or_a_third_agent_is_refused(lantern: Any, scripts: Any) -> None:
    active = await lantern.duet.start(user_id="local", topic="T", turns=2, agents=bots())
    await drain(lantern, active.run.id)
    with pytest.raises(Conflict, match="only a running duet"):
        await lantern.duet.update_agent(user_id="local", run_id=active.run.id, index=0, changes={"temperature": 1})
    with pytest.raises(NotFound):
        await lantern.duet.update_agent(user_id="local", run_id=active.run.id, index=2, changes={"temperature": 1})
    with pytest.raises(NotFound):
        await lantern.duet.update_agent(user_id="someone", run_id=active.run.id, index=0, changes={})
    run = await lantern.db.call(run_repo.get_run, run_id=active.run.id)
    assert run.result["changes"] == []


async def test_two_different_providers_can_talk(lantern: Any, scripts: Any) -> None:
    from services.providers.openai_compat import OpenAICompatProvider
    from tests.fakes.openai_server import FakeOpenAI, Reply

    with FakeOpenAI(replies=[Reply(text="Greetings from the server.")]) as fake:
        lantern.registry.providers["vllm"] = OpenAICompatProvider(
            name="vllm", api_key=None, base_url=fake.base_url, models=["tiny"], key_required=False)
        agents = bots()
        agents[1]["model"] = "vllm/tiny"
        active = await lantern.duet.start(user_id="local", topic="Hello", turns=2, agents=agents)
        events = await drain(lantern, active.run.id)
    assert [(t.agent, t.content) for t in events if isinstance(t, TurnFinished)] == [
        ("Alice", "Hello Bob."), ("Bob", "Greetings from the server.")]
    assert fake.requests[0]["messages"][-1] == {"role": "user", "content": "Topic: Hello\n\nHello Bob."}


async def test_a_turn_stopped_before_its_first_word_is_not_kept(lantern: Any, scripts: Any) -> None:
    scripts.add_script("mute", [{"text": "", "hang": True}])
    agents = bots()
    agents[1]["model"] = "scripted/mute"
    active = await lantern.duet.start(user_id="local", topic="Quiet", turns=4, agents=agents)
    async for _, event in lantern.runs.subscribe(active.run.id):
        if isinstance(event, TurnFinished):  # Alice is done; Bob's turn begins and says nothing
            await asyncio.sleep(0.1)
            break
    assert await lantern.runs.stop(active.run.id)
    run = await lantern.db.call(run_repo.get_run, run_id=active.run.id)
    assert run.status == "stopped"
    assert [(t["agent"], t["status"]) for t in run.result["turns"]] == [("Alice", "completed")]
    # Continued, Bob has his turn after all, numbered on from Alice's.
    more = await lantern.duet.start(user_id="local", topic="Quiet", turns=1, agents=bots(),
                                    continue_from=active.run.id)
    await drain(lantern, more.run.id)
    run2 = await lantern.db.call(run_repo.get_run, run_id=more.run.id)
    assert [(t["turn"], t["agent"]) for t in run2.result["turns"]] == [(0, "Alice"), (1, "Bob")]


async def test_a_continuation_carries_the_earlier_changes_and_records_edits_between_runs(
        lantern: Any, scripts: Any) -> None:
    agents = bots()
    agents[0]["model"] = "scripted/slowpoke"
    first = await lantern.duet.start(user_id="local", topic="Pace", turns=2, agents=agents)
    async for _, event in lantern.runs.subscribe(first.run.id):
        if isinstance(event, TextDelta):  # Alice speaks turn 0: Bob's change applies from turn 1
            await lantern.duet.update_agent(user_id="local", run_id=first.run.id, index=1,
                                            changes={"system_prompt": "Be kind"})
            break
    await drain(lantern, first.run.id)
    # Continued with Bob as he ended and Alice on another model: her change applies from her next turn, 2.
    edited = bots(model="scripted/alice")
    edited[1]["system_prompt"] = "Be kind"
    more = await lantern.duet.start(user_id="local", topic="Pace", turns=2, agents=edited,
                                    continue_from=first.run.id)
    await drain(lantern, more.run.id)
    run = await lantern.db.call(run_repo.get_run, run_id=more.run.id)
    assert [(c["before_turn"], c["agent"], c["changes"]) for c in run.result["changes"]] == [
        (1, "Bob", {"system_prompt": "Be kind"}), (2, "Alice", {"model": "scripted/alice"})]
    assert await lantern.duet.changes(user_id="local", run_id=more.run.id) == run.result["changes"]
    assert await lantern.duet.changes(user_id="someone", run_id=more.run.id) == []
    conversation = run.config["conversation"]
    assert conversation["runs"] == [first.run.id]
    assert conversation["agents_at_start"][0]["model"] == "scripted/slowpoke"
    assert conversation["agents_at_start"][1]["system_prompt"] == "Be blunt"
    assert conversation["totals"]["turns"] == 2


async def test_a_change_no_turn_used_is_reported_as_such(lantern: Any, scripts: Any) -> None:
    agents = bots()
    agents[1]["model"] = "scripted/slowpoke"
    active = await lantern.duet.start(user_id="local", topic="Late", turns=2, agents=agents)
    async for _, event in lantern.runs.subscribe(active.run.id):
        if isinstance(event, TextDelta) and event.agent == "Bob":  # Bob's last turn is under way
            await lantern.duet.update_agent(user_id="local", run_id=active.run.id, index=1,
                                            changes={"temperature": 0.1})
            break
    live = await lantern.duet.changes(user_id="local", run_id=active.run.id)
    assert [(c["before_turn"], c["agent"], c["changes"]) for c in live] == [(None, "Bob", {"temperature": 0.1})]
    await drain(lantern, active.run.id)
    stored = await lantern.duet.changes(user_id="local", run_id=active.run.id)
    assert [(c["before_turn"], c["agent"], c["changes"]) for c in stored] == [(None, "Bob", {"temperature": 0.1})]
