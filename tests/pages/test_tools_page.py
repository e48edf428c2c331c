"""The Tools page: tool cards appear live with the query and its result, then the answer."""

from __future__ import annotations

from nicegui.testing import User

from services.tools.registry import TOOL_NAMES

SEND = "keydown.enter.exact.prevent"


async def test_tool_card_shows_query_and_result_then_the_answer(user: User) -> None:
    await user.open("/tools")
    await user.should_see("sample business database")
    await user.should_see("The embedded model's tool use is a demo")  # no keys in tests
    assert user.find(marker="tools").elements.pop().value == list(TOOL_NAMES)  # all on by default here
    user.find(marker="model").elements.pop().value = "scripted/analyst"
    user.find(marker="composer").type("How many regions do we sell in?").trigger(SEND)
    # The first tool call builds the sample database: give it time on a busy machine.
    await user.should_see("SELECT COUNT(*) AS regions FROM regions", retries=100)
    await user.should_see("| 5 |", retries=50)  # the result table, as the tool returned it
    await user.should_see("We sell in **5 regions**.", retries=50)
    await user.should_see("done", retries=50)  # the card's status
    conv_id = (await user.http_client.get("/api/conversations")).json()["items"][0]["id"]
    # Reopened later, the card is still there, in order.
    await user.open(f"/chat/{conv_id}")
    await user.should_see("SELECT COUNT(*) AS regions FROM regions")
    await user.should_see("We sell in **5 regions**.")
    doc = (await user.http_client.get(f"/api/conversations/{conv_id}/export", params={"format": "json"})).json()
    parts = doc["messages"][-1]["extra"]["parts"]
    assert [p["type"] for p in parts] == ["text", "tool", "text"] and parts[1]["is_error"] is False


async def test_failed_tool_call_shows_an_error_card(user: User) -> None:
    await user.open("/tools")
    user.find(marker="model").elements.pop().value = "scripted/dropper"
    user.find(marker="composer").type("Clean up the orders table").trigger(SEND)
    await user.should_see("DROP TABLE orders", retries=100)
    await user.should_see("error", retries=50)
    await user.should_see("I can only read data.", retries=50)
