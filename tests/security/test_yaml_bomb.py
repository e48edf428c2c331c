"""Item 5: a pipeline definition cannot freeze the server or eat its memory (aliases, size, shape), and reading
one does not stop the event loop."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import pytest
from nicegui.testing import User

from services.core.errors import BadInput
from tests.conftest import ROOT

STEP = "- id: s\n  title: t\n  role: w\n  prompt: p\n  output: json\n  fields: {x: str}\n  repeat_from: s\n"
LOOP = "name: shaped\nroles: [w]\nsteps:\n" + STEP + "  until:\n    field: x\n    equals: "


def billion_laughs() -> str:
    """The classic: nine levels of nine aliases each, 9**9 (387 million) strings from well under 1 KB."""
    levels = ['&a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"&{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return LOOP + "[" + ", ".join(levels) + "]\n"


# Saves a definition as the pipelines page's "Validate & save" does, in a process of its own with 1.5 GiB more
# address space than it starts with, so that the old code fails here instead of taking the test run down.
SAVE_IN_A_CHILD = """
import asyncio, json, resource, sys, time
from app.context import Lantern
from app.settings import Settings
from services.core.errors import LanternError

async def main() -> None:
    lantern = Lantern.create(Settings())
    await lantern.startup()
    pages = int(open("/proc/self/statm").read().split()[0])
    cap = pages * resource.getpagesize() + 1536 * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    started = time.monotonic()
    try:
        await lantern.pipelines.save(user_id="local", source=sys.stdin.read())
        outcome = {"saved": True}
    except LanternError as exc:
        outcome = {"kind": exc.kind, "message": str(exc)}
    outcome["seconds"] = time.monotonic() - started
    print(json.dumps(outcome), flush=True)
    await lantern.shutdown()

asyncio.run(main())
"""


@pytest.mark.skipif(sys.platform != "linux", reason="caps the child's memory through /proc and RLIMIT_AS")
def test_a_billion_laughs_definition_is_refused_at_once() -> None:
    bomb = billion_laughs()
    assert len(bomb.encode()) < 1024
    try:
        child = subprocess.run([sys.executable, "-c", SAVE_IN_A_CHILD], input=bomb, capture_output=True, text=True,
                               cwd=ROOT, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("saving the definition was still running after 30 s")
    assert child.returncode == 0, f"the save died (exit {child.returncode}): {child.stderr[-1500:]}"
    outcome = json.loads(child.stdout.strip().splitlines()[-1])
    assert outcome.get("kind") == "bad_input", outcome
    assert "may not use YAML anchors or aliases" in outcome["message"]
    assert outcome["message"].startswith("line 13: ")  # the first anchor, inside `equals`
    assert outcome["seconds"] < 1, outcome


def editor_message(user: User) -> str:
    """What the line under the definition editor says."""
    with user.client:
        return str(user.find(marker="definition-message").elements.pop().text)


async def save_on_page(user: User, source: str) -> str:
    """Paste a definition into the editor on /pipelines, press "Validate & save" and read the answer."""
    await user.open("/pipelines")
    user.find(marker="definition").elements.pop().value = source
    user.find(marker="save-definition").click()
    for _ in range(100):
        if message := editor_message(user):
            return message
        await asyncio.sleep(0.05)
    raise AssertionError("the editor never answered")


ALIASED = """\
name: aliased
description: &same One line
roles: [writer]
steps:
- id: line
  title: *same
  role: writer
  prompt: Write about {topic}.
"""


async def test_the_editor_refuses_aliases_and_oversize_text_and_saves_a_normal_definition(user: User) -> None:
    message = await save_on_page(user, ALIASED)
    assert message.startswith("Not saved:") and "line 2: pipeline definitions may not use YAML anchors or aliases" \
        in message, message
    oversize = ALIASED.replace("&same One line", "'" + "a long description " * 16_000 + "'")
    assert 300_000 < len(oversize) < 310_000
    message = await save_on_page(user, oversize)
    assert message == "Not saved:\n• the definition is 297 KiB, more than the 256 KiB accepted", message
    message = await save_on_page(user, ALIASED.replace("&same ", "").replace("*same", "One line"))
    assert message.startswith("Saved “aliased”"), message
    assert "aliased" in user.find(marker="pipeline").elements.pop().options


def wrong_roles(count: int) -> str:
    """A definition whose roles are `count` lists instead of names."""
    return "name: roles\nroles: [" + "[], " * count + "w]\nsteps:\n- id: s\n  title: t\n  role: w\n  prompt: p\n"


@pytest.mark.parametrize(("source", "says"), [
    (LOOP + "[" + "0," * 130_000 + "0]\n", "line 13: the definition has more than 10,000 values"),
    (wrong_roles(5_000), "roles[9]: Input should be a valid string; and 4,990 more problems"),
    (LOOP + "[" * 5_000 + "]" * 5_000 + "\n", "line 13: the definition is nested more than 40 levels deep"),
    ('{"name": "deep", "roles": ["w"], "steps": ' + "[" * 50_000 + "]" * 50_000 + "}",
     "the definition is nested too deeply"),
], ids=["130k-values", "5k-wrong-roles", "5k-levels-yaml", "50k-levels-json"])
async def test_hostile_shapes_under_the_size_cap_are_refused_quickly(lantern: Any, source: str, says: str) -> None:
    assert len(source.encode()) <= 256 * 1024
    started = time.monotonic()
    with pytest.raises(BadInput) as refused:
        await lantern.pipelines.save(user_id="local", source=source)
    took = time.monotonic() - started
    assert says in str(refused.value), str(refused.value)[:500]
    assert len(str(refused.value)) < 2_000  # the first problems and a count, not 5,000 of them
    assert took < 2, f"took {took:.1f} s"


async def test_an_api_definition_with_thousands_of_problems_gets_a_short_answer(user: User) -> None:
    definition = {"name": "roles", "roles": [[] for _ in range(5_000)],
                  "steps": [{"id": "s", "title": "t", "role": "w", "prompt": "p"}]}
    response = await user.http_client.post("/api/runs", json={"kind": "pipeline", "topic": "t",
                                                              "definition": definition})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert message.startswith("roles[0]: Input should be a valid string; ") and message.endswith(
        "and 4,990 more problems"), message[-200:]


def large_definition() -> str:
    """A valid definition near the 256 KiB cap: thirty long prompts (~0.2 s to read here)."""
    words = " ".join(f"word{i}" for i in range(950))
    steps = "".join(f"- id: s{i}\n  title: Step {i}\n  role: w\n  prompt: About {{topic}} {words}\n" for i in range(30))
    return f"name: large\nroles: [w]\nsteps:\n{steps}"


async def test_the_event_loop_keeps_running_while_a_large_definition_is_read(lantern: Any) -> None:
    source = large_definition()
    assert 200 * 1024 < len(source) < 256 * 1024
    gaps: list[float] = []

    async def tick() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.05)
    gaps.clear()
    started = time.perf_counter()
    saved = await lantern.pipelines.save(user_id="local", source=source)
    took = time.perf_counter() - started
    ticker.cancel()
    assert saved.name == "large" and len(saved.steps) == 30
    # Other pages and sockets are served meanwhile: no pause of the loop is more than a fraction of the save.
    assert max(gaps) < took / 2, f"the loop stood still for {max(gaps):.2f} s of a {took:.2f} s save"
