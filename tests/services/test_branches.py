"""Regenerate and edit keep old branches reachable; long histories are trimmed to the context."""

from __future__ import annotations

from typing import Any

import pytest

from services.chat.service import fit_history
from services.core.errors import BadInput, NotFound
from services.providers.base import ChatMessage
from storage import conversations as conv_repo


async def reply(lantern: Any, start: Any) -> None:
    async for _ in lantern.runs.subscribe(start.run.id):
        pass


async def path_texts(lantern: Any, conv_id: str) -> list[tuple[str, str, int, int]]:
    path = await lantern.db.call(conv_repo.current_path, conversation_id=conv_id)
    return [(e.message.role, e.message.content, e.index, len(e.siblings)) for e in path]


async def test_regenerate_adds_a_sibling_reply_and_both_stay_reachable(lantern: Any) -> None:
    lantern.registry.scripted.add_script("twice", ["First answer.", "Second answer."])
    start = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "Q"}],
                                     model="scripted/twice")
    await reply(lantern, start)
    again = await lantern.chat.regenerate(user_id="local", conversation_id=start.conversation_id,
                                          model="scripted/twice")
    await reply(lantern, again)
    assert await path_texts(lantern, start.conversation_id) == [
        ("user", "Q", 0, 1), ("assistant", "Second answer.", 1, 2)]
    # The model saw only the question, not the first answer.
    assert [m.content for m in lantern.registry.scripted.requests[-1].messages] == ["Q"]
    await lantern.db.call(conv_repo.select_branch, conversation_id=start.conversation_id, user_id="local",
                          message_id=start.message_id)
    assert (await path_texts(lantern, start.conversation_id))[-1] == ("assistant", "First answer.", 0, 2)


async def test_edit_reruns_from_there_and_keeps_the_old_branch(lantern: Any) -> None:
    first = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "One"}],
                                     model="scripted/echo")
    await reply(lantern, first)
    conv = first.conversation_id
    second = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "Two"}],
                                      model="scripted/echo", conversation_id=conv)
    await reply(lantern, second)
    path = await lantern.db.call(conv_repo.current_path, conversation_id=conv)
    edited = await lantern.chat.edit(user_id="local", conversation_id=conv, message_id=path[0].message.id,
                                     content="Uno")
    await reply(lantern, edited)
    assert await path_texts(lantern, conv) == [("user", "Uno", 1, 2), ("assistant", "You said: Uno", 0, 1)]
    # Switching back to the old first message restores its whole branch, down to "Two".
    await lantern.db.call(conv_repo.select_branch, conversation_id=conv, user_id="local",
                          message_id=path[0].message.id)
    assert [t[1] for t in await path_texts(lantern, conv)] == ["One", "You said: One", "Two", "You said: Two"]


async def test_edit_and_regenerate_refuse_bad_targets(lantern: Any) -> None:
    start = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "Hi"}],
                                     model="scripted/echo")
    await reply(lantern, start)
    with pytest.raises(NotFound):
        await lantern.chat.edit(user_id="local", conversation_id=start.conversation_id,
                                message_id=start.message_id, content="x")  # a reply, not a user message
    with pytest.raises(BadInput):
        path = await lantern.db.call(conv_repo.current_path, conversation_id=start.conversation_id)
        await lantern.chat.edit(user_id="local", conversation_id=start.conversation_id,
                                message_id=path[0].message.id, content="  ")
    with pytest.raises(NotFound):
        await lantern.chat.regenerate(user_id="someone-else", conversation_id=start.conversation_id)


def test_fit_history_drops_oldest_and_never_starts_with_a_reply() -> None:
    history = [ChatMessage(role="user" if i % 2 == 0 else "assistant", content="x" * 300) for i in range(9)]
    kept, dropped = fit_history(history, system="Be brief", budget_tokens=600, reply_tokens=200)
    assert dropped == len(history) - len(kept) and dropped > 0
    assert kept[-1] is history[-1] and kept[0].role == "user"
    assert fit_history(history, system=None, budget_tokens=None, reply_tokens=200) == (history, 0)


async def test_local_model_history_is_trimmed_and_the_run_says_so(lantern: Any) -> None:
    conv_id = None
    for i in range(6):
        start = await lantern.chat.start(user_id="local", model="scripted/echo", conversation_id=conv_id,
                                         messages=[{"role": "user", "content": f"{i} " + "long " * 400}])
        conv_id = start.conversation_id
        await reply(lantern, start)
    provider = lantern.registry.providers["scripted"]
    provider.context_tokens = lambda model: 2048  # the local model's window, on the scripted provider
    start = await lantern.chat.start(user_id="local", model="scripted/echo", conversation_id=conv_id,
                                     messages=[{"role": "user", "content": "last"}])
    await reply(lantern, start)
    sent = lantern.registry.scripted.requests[-1].messages
    assert start.dropped > 0 and sent[-1].content == "last" and sent[0].role == "user"
    run = (await lantern.db.call(lambda s: s.get(__import__("storage.models").models.Run, start.run.id)))
    assert run.config["dropped_messages"] == start.dropped
