"""The Chat page as a person sees it (NiceGUI's simulated User)."""

from __future__ import annotations

import asyncio

import pytest
from nicegui import ui
from nicegui.testing import User
from nicegui.testing.user_interaction import UserInteraction

from components.conversation_list import Anchor
from components.message_card import EVENT, MessageCard
from components.streaming_markdown import StreamingMarkdown
from tests.pages.actions import open_row_menu, press

SEND = "keydown.enter.exact.prevent"


@pytest.fixture
def scripted_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages start on a scripted model instead of the embedded one."""
    monkeypatch.setenv("LANTERN_DEFAULT_MODEL", "scripted/hello")


async def conversation_ids(user: User) -> list[str]:
    return [i["id"] for i in (await user.http_client.get("/api/conversations")).json()["items"]]


async def test_send_shows_the_streamed_reply_and_stores_it(scripted_default: None, user: User) -> None:
    await user.open("/")
    await user.should_see("Ask anything")
    user.find(marker="composer").type("Hello there").trigger(SEND)
    await user.should_see("Hello there")
    await user.should_see("Hello! I am a **scripted** model.")
    await user.should_see("scripted/hello")  # the reply's footer: model, tokens, cost
    await user.should_not_see("Ask anything")
    [composer] = user.find(marker="composer").elements
    assert composer.value == ""  # the box is empty for the next message
    [conv_id] = await conversation_ids(user)
    # Reopening the conversation shows the stored messages.
    await user.open(f"/chat/{conv_id}")
    await user.should_see("Hello there")
    await user.should_see("I am a **scripted** model")


async def test_empty_message_is_refused(scripted_default: None, user: User) -> None:
    await user.open("/")
    user.find(marker="composer").type("   ").trigger(SEND)
    await user.should_see("Type a message first.")
    assert await conversation_ids(user) == []


async def test_stop_keeps_the_partial_reply(monkeypatch: pytest.MonkeyPatch, user: User) -> None:
    await user.open("/")
    user.find(marker="model").elements.pop().value = "scripted/slow"
    user.find(marker="composer").type("Talk a lot").trigger(SEND)
    await user.should_see("word word")
    user.find(marker="composer").trigger("keydown.esc")
    await user.should_see("stopped")
    [conv_id] = await conversation_ids(user)
    conv = (await user.http_client.get(f"/api/conversations/{conv_id}")).json()
    reply = conv["messages"][-1]
    assert reply["status"] == "stopped" and 0 < len(reply["content"]) < len("word " * 400)


async def test_reload_mid_reply_shows_everything_and_continues(user: User) -> None:
    await user.open("/")
    user.find(marker="model").elements.pop().value = "scripted/slow"
    user.find(marker="composer").type("Talk a lot").trigger(SEND)
    await user.should_see("word word")
    [conv_id] = await conversation_ids(user)
    await user.open(f"/chat/{conv_id}")  # a reload: a new page for the same conversation
    await user.should_see("Talk a lot")
    body = user.find(StreamingMarkdown).elements.pop()
    seen = len(body.text)
    assert seen > 0  # everything so far was replayed
    await asyncio.sleep(0.3)
    assert len(body.text) > seen  # and it goes on live
    await user.should_see("400 out tokens", retries=600)  # footer once done (~8 s of script)
    assert body.text == "word " * 400


async def test_unknown_conversation_says_so(user: User) -> None:
    await user.open("/chat/does-not-exist")
    await user.should_see("This conversation does not exist")


async def test_navigation_reaches_every_section(user: User) -> None:
    await user.open("/")
    for label in ("Chat", "Tools", "Duet", "Pipelines", "Studio", "History", "Settings"):
        await user.should_see(label)
    await user.open("/settings")
    await user.should_see(marker="account-local")  # loopback: one local user, no login
    await user.should_see(marker="providers-section")
    await user.should_not_see(marker="tokens-section")


async def test_sidebar_lists_searches_renames_and_deletes(scripted_default: None, user: User) -> None:
    for text in ("Plans for the weekend", "Quarterly revenue report"):
        await user.open("/")
        user.find(marker="composer").type(text).trigger(SEND)
        await user.should_see("I am a **scripted** model")
    await user.open("/")
    await user.should_see("Plans for the weekend")
    await user.should_see("Quarterly revenue report")
    user.find("Search conversations").type("revenue").trigger("update:modelValue")
    await user.should_not_see("Plans for the weekend")
    await user.should_see("Quarterly revenue report")
    user.find("Search conversations").clear().type("").trigger("update:modelValue")
    await user.should_see("Plans for the weekend")
    user.find("Search conversations").type("revenue").trigger("update:modelValue")
    await user.should_not_see("Plans for the weekend")
    open_row_menu(user)  # the row's button opens the shared menu for it
    user.find(marker="rename").click()
    user.find(marker="rename-title").clear().type("Revenue Q3").trigger("keydown.enter")
    await user.should_see(kind=Anchor, content="Revenue Q3")
    open_row_menu(user)
    user.find(marker="delete").click()
    await user.should_see("This cannot be undone")
    user.find(marker="confirm-delete").click()
    await user.should_see("Nothing matches.")
    titles = [i["title"] for i in (await user.http_client.get("/api/conversations")).json()["items"]]
    assert titles == ["Plans for the weekend"]


def sidebar_rows(user: User) -> list[tuple[str, ui.element]]:
    """The sidebar's rows in order, as (title, row element)."""
    items = user.find(marker="conversation-list").elements.pop()
    return [(row.default_slot.children[0].text, row) for row in items if "lantern-conv" in row.classes]


async def test_sidebar_updates_one_row_per_send(scripted_default: None, user: User) -> None:
    for text in ("Older topic", "Newer topic"):
        await user.http_client.post("/api/chat", json={"messages": [{"role": "user", "content": text}],
                                                       "model": "scripted/echo"})
    await user.open("/")
    before = sidebar_rows(user)
    assert [title for title, _ in before] == ["Newer topic", "Older topic"]
    user.find(marker="composer").type("Brand new topic").trigger(SEND)
    await user.should_see("I am a **scripted** model")
    # A new conversation: one row added on top and highlighted; the others are the very same elements.
    (title, new), *others = sidebar_rows(user)
    assert title == "Brand new topic" and "lantern-conv-on" in new.classes
    assert others == before and not any(row.is_deleted for _, row in before)
    assert not any("lantern-conv-on" in row.classes for _, row in others)
    # A send in an older conversation moves its row to the top; no row is redrawn.
    [older_id] = [i for i, t in ((c["id"], c["title"]) for c in
                                 (await user.http_client.get("/api/conversations")).json()["items"])
                  if t == "Older topic"]
    await user.open(f"/chat/{older_id}")
    before = sidebar_rows(user)
    user.find(marker="composer").type("Back to this").trigger(SEND)
    await user.should_see("You said: Back to this")
    after = sidebar_rows(user)
    assert [t for t, _ in after] == ["Older topic", "Brand new topic", "Newer topic"]
    assert {row.id for _, row in after} == {row.id for _, row in before}
    assert not any(row.is_deleted for _, row in after)


async def test_send_appends_to_the_thread_without_redrawing_it(user: User) -> None:
    await user.open("/")
    user.find(marker="model").elements.pop().value = "scripted/echo"
    user.find(marker="composer").type("One").trigger(SEND)
    await user.should_see("You said: One")
    [first_reply] = user.find(StreamingMarkdown).elements
    user.find(marker="composer").type("Two").trigger(SEND)
    await user.should_see("You said: Two")
    assert not first_reply.is_deleted  # the earlier messages stayed as they were
    assert len(user.find(marker="regenerate").elements) == 1  # offered on the last reply only
    assert len(user.find(marker="edit").elements) == 2
    await user.should_see("You said: One")


async def test_regenerate_and_switch_between_versions(user: User) -> None:
    await user.open("/")
    user.find(marker="model").elements.pop().value = "scripted/echo"
    user.find(marker="composer").type("Ping").trigger(SEND)
    await user.should_see("You said: Ping")
    press(user, "regenerate")
    await user.should_see("2/2")
    press(user, "branch-prev")
    await user.should_see("1/2")
    [conv_id] = await conversation_ids(user)
    conv = (await user.http_client.get(f"/api/conversations/{conv_id}")).json()
    assert [m["role"] for m in conv["messages"]] == ["user", "assistant", "assistant"]


async def test_edit_reruns_from_the_edited_message(user: User) -> None:
    await user.open("/")
    user.find(marker="model").elements.pop().value = "scripted/echo"
    user.find(marker="composer").type("First question").trigger(SEND)
    await user.should_see("You said: First question")
    press(user, "edit")
    user.find(marker="edit-box").clear().type("Better question")
    user.find(marker="edit-save").click()
    await user.should_see("You said: Better question")
    await user.should_not_see("You said: First question")
    await user.should_see("2/2")  # the edited message has two versions
    press(user, "branch-prev")
    await user.should_see("You said: First question")


async def test_system_prompt_and_temperature_reach_the_model(user: User) -> None:
    await user.open("/")
    user.find(marker="model").elements.pop().value = "scripted/echo"
    user.find(marker="system-prompt").type("Answer like a pirate.")
    user.find(ui.slider).elements.pop().value = 0.3
    user.find(marker="composer").type("Hi").trigger(SEND)
    await user.should_see("You said: Hi")
    [conv_id] = await conversation_ids(user)
    conv = (await user.http_client.get(f"/api/conversations/{conv_id}")).json()
    assert conv["system_prompt"] == "Answer like a pirate." and conv["temperature"] == 0.3
    await user.open(f"/chat/{conv_id}")
    await user.should_see("Answer like a pirate.")  # settings come back with the conversation


async def test_long_history_opens_with_the_newest_messages(user: User) -> None:
    conv_id = None
    for i in range(25):
        body: dict[str, object] = {"messages": [{"role": "user", "content": f"Question number {i}"}],
                                   "model": "scripted/echo"}
        if conv_id:
            body["conversation_id"] = conv_id
        conv_id = (await user.http_client.post("/api/chat", json=body)).json()["conversation_id"]
    await user.open(f"/chat/{conv_id}")
    await user.should_see("You said: Question number 24")
    await user.should_see("Show 10 earlier messages")
    await user.should_not_see("Question number 4")
    user.find("Show 10 earlier messages").click()
    await user.should_see("You said: Question number 0")


async def test_export_menu_downloads_the_conversation(scripted_default: None, user: User) -> None:
    await user.open("/")
    user.find(marker="composer").type("Export me").trigger(SEND)
    await user.should_see("I am a **scripted** model")
    user.find(marker="export-md").click()
    response = await user.download.next()
    assert response.status_code == 200
    assert "## You" in response.text and "Export me" in response.text
    user.find(marker="export-json").click()
    doc = (await user.download.next()).json()
    assert [m["role"] for m in doc["messages"]] == ["user", "assistant"]
    user.find(marker="export-pdf").click()
    pdf = await user.download.next(timeout=30)
    if pdf.status_code == 501:
        pytest.skip(f"PDF export unavailable here: {pdf.json()['error']['message']}")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert "attachment" in pdf.headers["content-disposition"]


async def test_history_lists_and_searches_conversations(scripted_default: None, user: User) -> None:
    await user.open("/history")
    await user.should_see("No conversations yet")
    for text in ("Lighthouse keepers", "Tidal charts"):
        await user.http_client.post("/api/chat", json={"messages": [{"role": "user", "content": text}],
                                                       "model": "scripted/echo"})
    await user.open("/history")
    await user.should_see("Lighthouse keepers")
    user.find(marker="history-search").type("tidal").trigger("update:modelValue")
    await user.should_not_see("Lighthouse keepers")
    await user.should_see("Tidal charts")


async def test_a_forged_or_stale_message_action_changes_nothing(user: User) -> None:
    """The page-level action event names a card and an action: anything else is ignored, nothing breaks."""
    await user.open("/")
    user.find(marker="model").elements.pop().value = "scripted/echo"
    user.find(marker="composer").type("Ping").trigger(SEND)
    await user.should_see("You said: Ping")
    [reply] = [c for c in user.find(kind=MessageCard).elements if c.role == "assistant"]
    [composer] = user.find(marker="composer").elements
    assert user.client is not None
    layout = UserInteraction(user, {user.client.layout}, None)
    for args in (None, "regenerate", [reply.id], [reply.id, "regenerate", 1], [str(reply.id), "regenerate"],
                 [composer.id, "regenerate"], [reply.id, "edit"], [reply.id, "delete"], [10**9, "regenerate"]):
        layout.trigger(EVENT, args)
    await asyncio.sleep(0.3)
    [conv_id] = await conversation_ids(user)
    conv = (await user.http_client.get(f"/api/conversations/{conv_id}")).json()
    assert [m["role"] for m in conv["messages"]] == ["user", "assistant"]  # no regenerate, no edit
    with pytest.raises(ValueError, match="unknown message action"):
        reply.offer("delete", lambda: None)
    press(user, "regenerate")  # and the real action still works
    await user.should_see("2/2")


async def test_a_click_in_the_sidebar_off_a_row_button_opens_no_menu(scripted_default: None, user: User) -> None:
    await user.open("/")
    user.find(marker="composer").type("Hello there").trigger(SEND)
    await user.should_see("I am a **scripted** model")
    [menu] = user.find(marker="conversation-menu").elements
    for args in (None, "c1", {"id": 1}, 10**9):
        user.find(marker="conversation-clicks").trigger("click", args)
        assert not menu.value
    open_row_menu(user)
    assert menu.value


async def test_a_reply_cut_at_the_length_limit_says_so_and_continues(user: User) -> None:
    await user.open("/")
    user.find(marker="model").elements.pop().value = "scripted/cutoff"
    user.find(marker="composer").type("Tell me about the keeper").trigger(SEND)
    await user.should_see("The lighthouse keeper climbed the")
    await user.should_see("Stopped at the length limit")  # before: shown as a normal, finished reply
    [conv_id] = await conversation_ids(user)
    await user.open(f"/chat/{conv_id}")  # reopened, it still says so and still offers Continue
    await user.should_see("Stopped at the length limit")
    press(user, "continue")
    await user.should_see("stairs, one hundred and twelve of them.")
    conv = (await user.http_client.get(f"/api/conversations/{conv_id}")).json()
    assert conv["messages"][-1]["content"] == "stairs, one hundred and twelve of them."
    await user.should_not_see(marker="continue")  # the finished reply offers no Continue
