"""Item 9: guessing cannot lock a person out, an office NAT is not one attacker, timing tells no names."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import pytest

from services.core.errors import NotAuthenticated, RateLimited
from services.core.limits import Backoff

PASSWORD = "correct horse battery"


async def fail(accounts: Any, name: str, address: str, times: int) -> None:
    """`times` wrong passwords for `name` from `address`."""
    for _ in range(times):
        with pytest.raises(NotAuthenticated):
            await accounts.login(name, "guess guess", address)


async def test_guessing_from_one_address_does_not_lock_the_name_elsewhere(lantern: Any) -> None:
    accounts = lantern.accounts
    await accounts.add_user("eve", PASSWORD, "member")
    await fail(accounts, "eve", "10.0.0.9", 5)
    with pytest.raises(RateLimited) as slowed:  # the guesser now waits
        await accounts.login("eve", "guess again", "10.0.0.9")
    assert 0 < slowed.value.retry_after <= 2  # a short backoff, not a lockout
    assert (await accounts.login("eve", PASSWORD, "10.0.0.10")).name == "eve"  # eve, elsewhere, gets in


async def test_many_names_from_one_nat_do_not_lock_out_colleagues(lantern: Any) -> None:
    accounts = lantern.accounts
    await accounts.add_user("ann", PASSWORD, "member")
    await accounts.add_user("ben", PASSWORD, "member")
    office = "192.0.2.1"
    await accounts.login("ann", PASSWORD, office)  # ann logged in from the office before
    for i in range(25):  # someone behind the same NAT sprays names
        try:
            await accounts.login(f"nobody{i}", "guess guess", office)
        except RateLimited:
            break
        except NotAuthenticated:
            continue
    else:
        pytest.fail("spraying 25 names from one address was never slowed down")
    assert (await accounts.login("ann", PASSWORD, office)).name == "ann"  # a known colleague still gets in
    with pytest.raises(RateLimited):
        await accounts.login("ben", PASSWORD, office)  # a name new to this address waits its turn (≤ 60 s)


def test_backoff_doubles_and_caps_and_forgets() -> None:
    now = [0.0]
    backoff = Backoff(3, base=1, cap=8, forget=100, clock=lambda: now[0])
    for _ in range(3):
        assert backoff.retry_after("k") == 0
        backoff.fail("k")
    waits = []
    for _ in range(6):
        waits.append(backoff.retry_after("k"))
        now[0] += waits[-1]
        backoff.fail("k")
    assert waits == [1, 2, 4, 8, 8, 8]  # never longer than the cap: the real person always gets a turn
    now[0] += 100
    assert backoff.retry_after("k") == 0  # quiet long enough: forgiven


async def test_unknown_and_known_names_take_the_same_time(lantern: Any) -> None:
    accounts = lantern.accounts
    await accounts.add_user("zed", PASSWORD, "member")

    async def timed(name: str, address: str) -> float:
        started = time.perf_counter()
        with pytest.raises(NotAuthenticated):
            await accounts.login(name, "wrong password", address)
        return time.perf_counter() - started

    await timed("warmup", "198.51.100.99")  # the throw-away hash is made once
    known = [await timed("zed", f"198.51.100.{i}") for i in range(4)]
    unknown = [await timed(f"ghost{i}", f"198.51.100.{10 + i}") for i in range(4)]
    # Before the fix an unknown name answered ~40x faster (no hash check); now both run Argon2.
    assert statistics.median(unknown) > statistics.median(known) / 3


async def test_guesses_sent_all_at_once_meet_the_backoff_too(lantern: Any) -> None:
    accounts = lantern.accounts
    await accounts.add_user("una", PASSWORD, "member")

    async def guess() -> str:
        try:
            await accounts.login("una", "guess guess", "203.0.113.5")
        except RateLimited:
            return "slowed"
        except NotAuthenticated:
            return "checked"
        return "in"

    outcomes = await asyncio.gather(*(guess() for _ in range(30)))
    # Before: all 30 were checked, because each failure was counted only after its slow hash check.
    assert outcomes.count("checked") <= 5 and outcomes.count("slowed") >= 25
