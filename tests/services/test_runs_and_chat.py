"""The run manager and chat service with the scripted provider, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.core.errors import BadInput, NotFound, ProviderAuth, UnknownModel
from services.core.events import Done, Error, TextDelta, Usage
from storage import conversations as conv_repo
from storage import runs as run_repo


async def collect(lantern: Any, run_id: str, after: int = 0) -> list[tuple[int, Any]]:
    return [item async for item in lantern.runs.subscribe(run_id, after=after)]


async def test_reply_streams_and_is_stored(lantern: Any) -> None:
    start = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "Hi"}],
                                     model="scripted/hello")
    events = await collect(lantern, start.run.id)
    assert [seq for seq, _ in events] == list(range(1, len(events) + 1))
    text = "".join(e.delta for _, e in events if isinstance(e, TextDelta))
    assert text.startswith("Hello! I am a **scripted** model.")
    assert isinstance(events[-2][1], Usage) and events[-1][1] == Done(status="completed", run_id=start.run.id)
    msgs = await lantern.db.call(conv_repo.list_messages, conversation_id=start.conversation_id)
    assert [(m.role, m.status) for m in msgs] == [("user", "completed"), ("assistant", "completed")]
    assert msgs[1].content == text and msgs[1].model == "scripted/hello"
    run = await lantern.db.call(run_repo.get_run, run_id=start.run.id)
    assert run.status == "completed" and run.result["message"]["content"] == text
    # A late subscriber replays the same events from the database.
    assert await collect(lantern, start.run.id) == events
    assert await collect(lantern, start.run.id, after=len(events) - 1) == events[-1:]


async def test_second_turn_sends_history(lantern: Any) -> None:
    first = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "One"}],
                                     model="scripted/echo")
    await collect(lantern, first.run.id)
    second = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "Two"}],
                                      model="scripted/echo", conversation_id=first.conversation_id)
    await collect(lantern, second.run.id)
    request = lantern.registry.scripted.requests[-1]
    assert [(m.role, m.content) for m in request.messages] == [
        ("user", "One"), ("assistant", "You said: One"), ("user", "Two")]


async def test_stop_keeps_partial_reply(lantern: Any) -> None:
    start = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "Go"}],
                                     model="scripted/slow")
    seen = []
    async for _seq, event in lantern.runs.subscribe(start.run.id):
        seen.append(event)
        if len(seen) == 5:
            assert await lantern.runs.stop(start.run.id)
    assert seen[-1] == Done(status="stopped", run_id=start.run.id)
    msgs = await lantern.db.call(conv_repo.list_messages, conversation_id=start.conversation_id)
    assert msgs[-1].status == "stopped"
    assert 0 < len(msgs[-1].content) < len("word " * 400)
    assert msgs[-1].content == "".join(e.delta for e in seen if isinstance(e, TextDelta))
    assert await lantern.runs.stop(start.run.id) is False  # already over


async def test_provider_failure_keeps_partial_and_says_why(lantern: Any) -> None:
    start = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "Go"}],
                                     model="scripted/broken")
    events = [e for _, e in await collect(lantern, start.run.id)]
    assert Error(error_type="unavailable", message="upstream went away") in events
    assert events[-1].status == "failed"
    msgs = await lantern.db.call(conv_repo.list_messages, conversation_id=start.conversation_id)
    assert msgs[-1].content == "Partial answer" and msgs[-1].status == "failed"
    assert msgs[-1].extra["error"]["message"] == "upstream went away"


@pytest.mark.parametrize(("kwargs", "error", "says"), [
    ({"model": "nope/x"}, UnknownModel, "Unknown model 'nope/x'"),
    ({"model": "local/gpt-99"}, UnknownModel, "local offers smollm2"),
    ({"model": "openai/gpt-4o-mini"}, ProviderAuth, "OPENAI_API_KEY"),
    ({"messages": [{"role": "user", "content": "   "}]}, BadInput, "non-empty user message"),
    ({"messages": []}, BadInput, "messages is empty"),
    ({"temperature": 7}, BadInput, "temperature"),
    ({"conversation_id": "missing"}, NotFound, "No conversation missing"),
])
async def test_bad_input_is_refused_and_stores_nothing(lantern: Any, kwargs: dict[str, Any],
                                                       error: type[Exception], says: str) -> None:
    args: dict[str, Any] = {"user_id": "local", "model": "scripted/echo",
                            "messages": [{"role": "user", "content": "Hi"}], **kwargs}
    with pytest.raises(error, match=says):
        await lantern.chat.start(**args)
    _items, total = await lantern.db.call(conv_repo.list_conversations, user_id="local")
    assert total == 0 and lantern.runs.active == {}


async def test_shutdown_marks_running_work_interrupted(lantern: Any) -> None:
    start = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "Go"}],
                                     model="scripted/slow")
    await asyncio.sleep(0.2)
    await lantern.runs.shutdown()
    run = await lantern.db.call(run_repo.get_run, run_id=start.run.id)
    assert run.status == "interrupted"
    msgs = await lantern.db.call(conv_repo.list_messages, conversation_id=start.conversation_id)
    assert msgs[-1].status == "interrupted" and msgs[-1].content.startswith("word")


async def test_a_run_stopped_before_its_task_begins_ends_stopped(lantern: Any) -> None:
    start = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "Go"}],
                                     model="scripted/slow")
    assert await lantern.runs.stop(start.run.id) is True  # at once: the task has not run a step yet
    assert await asyncio.wait_for(lantern.runs.wait(start.run.id), 5) == "stopped"
    events = [e for _, e in await asyncio.wait_for(collect(lantern, start.run.id), 5)]
    assert events[-1] == Done(status="stopped", run_id=start.run.id)
    msgs = await lantern.db.call(conv_repo.list_messages, conversation_id=start.conversation_id)
    assert msgs[-1].status == "stopped"


async def test_repeated_stops_still_store_the_partial_reply(lantern: Any) -> None:
    start = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "Go"}],
                                     model="scripted/slow")
    await asyncio.sleep(0.2)
    first = asyncio.create_task(lantern.runs.stop(start.run.id))
    await asyncio.sleep(0.005)  # the run is now storing its partial output
    await lantern.runs.stop(start.run.id)  # a second Esc, or a second tab pressing Stop
    assert await first is True
    events = [e for _, e in await asyncio.wait_for(collect(lantern, start.run.id), 10)]
    assert events[-1] == Done(status="stopped", run_id=start.run.id)
    msgs = await lantern.db.call(conv_repo.list_messages, conversation_id=start.conversation_id)
    assert msgs[-1].status == "stopped" and msgs[-1].content.startswith("word")


async def test_a_stopped_reply_keeps_what_it_used(lantern: Any) -> None:
    from storage import conversations as conv_repo
    from storage import runs as run_repo

    start = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "talk"}],
                                     model="scripted/slow")
    while sum(len(getattr(e, "delta", "")) for _, e in start.run.events) < 200:
        await asyncio.sleep(0.02)
    await lantern.runs.stop(start.run.id)
    message = await lantern.db.call(conv_repo.get_message, message_id=start.message_id)
    run = await lantern.db.call(run_repo.get_run, run_id=start.run.id)
    # Before: 0 tokens for a reply stopped before the provider's usage came.
    assert message.status == "stopped" and message.output_tokens >= 50 and message.extra["estimated_usage"]
    assert run.output_tokens == message.output_tokens
