"""Who is asking, in shared mode: password logins, browser sessions and personal API tokens.

Only hashes are stored: Argon2id for passwords, SHA-256 for session and API tokens (they are
random, 256-bit, so a fast hash is enough). Lookups are cached briefly so a request does not
cost a database round trip. Whatever ends a login or token (logout, revocation, a password change
or removal, also by `lantern users` in another process) bumps the database's auth epoch; `sync`
notices within a second, drops the cache and finds which open pages' logins have ended.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from services.accounts.passwords import hash_password, verify_password
from services.core.errors import BadInput, NotAuthenticated, NotFound, RateLimited
from services.core.limits import Backoff
from storage import auth_store
from storage import users as user_repo
from storage.engine import Database
from storage.models import LOCAL_USER_ID, ApiToken, User, utcnow

_T = TypeVar("_T")
TOKEN_PREFIX = "lt_"
CACHE_SECONDS = 30.0
ROLES = ("admin", "member")
TOKEN_LIFETIMES_DAYS = (7, 30, 90, 365)  # offered when creating a token; None means until revoked


@dataclass(frozen=True)
class Principal:
    """An authenticated user; `session` is the login's token hash when it came from a browser."""

    user_id: str
    name: str
    role: str
    session: str | None = None
    expires_at: datetime | None = None
    resolved_at: float = 0.0
    record: bool = True  # False for an API token made to keep its /v1 calls out of History

    @property
    def is_admin(self) -> bool:
        """Whether this user may manage accounts."""
        return self.role == "admin"


LOCAL = Principal(user_id=LOCAL_USER_ID, name="local", role="admin")


def digest(token: str) -> str:
    """The stored form of a session or API token."""
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    """Logins, sessions, tokens and user management for shared mode."""

    def __init__(self, db: Database, *, session_hours: float = 12.0, attempts_per_minute: int = 5) -> None:
        self.db = db
        self.session_hours = session_hours
        # Guessing one name from one address backs off; it never locks the name for people elsewhere.
        self.failures = Backoff(attempts_per_minute)
        # Spraying many names from one address backs off too, except for names that logged in from it
        # before: colleagues behind the same office NAT keep getting in.
        self.failures_by_address = Backoff(attempts_per_minute * 4)
        self._trusted: set[tuple[str, str]] = set()  # (name, address) that logged in successfully
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._ended: set[str] = set()  # session hashes logged out while their pages may still be open
        self._reset_at: dict[str, float] = {}  # user id -> when their logins were ended (password, removal)
        self._epoch: int | None = None
        self.changed = asyncio.Event()  # set when a login ends in this process, so open pages are checked at once

    async def login(self, name: str, password: str, address: str) -> Principal:
        """Check a name and password, or raise RateLimited / NotAuthenticated (same message for both causes)."""
        name = name.strip()
        key = f"{name.lower()}\0{address}"
        self._throttle(key, address, trusted=(name.lower(), address) in self._trusted)
        # Counted as failed until proven right: sixty guesses sent at once meet the backoff after the fifth,
        # instead of all passing the check above while the first ones are still being verified.
        self.failures.fail(key)
        self.failures_by_address.fail(address)
        user = await self.db.call(user_repo.find_user, name=name)
        # Unknown names cost the same hash check as known ones (verify_password), so timing tells nothing.
        ok = await _hashing(verify_password, user.password_hash if user else None, password)
        if user is None or not ok:
            raise NotAuthenticated("Wrong name or password.")
        self.failures.clear(key)
        self.failures_by_address.forgive(address)
        if len(self._trusted) > 10_000:
            self._trusted.clear()
        self._trusted.add((name.lower(), address))
        return _principal(user)

    async def start_session(self, principal: Principal) -> str:
        """A new browser login for the user; returns the cookie token (shown to nobody else)."""
        token = secrets.token_urlsafe(32)
        expires = utcnow() + timedelta(hours=self.session_hours)
        await self.db.call(auth_store.create_session, token_hash=digest(token), user_id=principal.user_id,
                           expires_at=expires)
        return token

    async def from_session(self, token: str) -> Principal | None:
        """The user of a live browser login."""
        key = "s:" + digest(token)
        cached = self._cached(key)
        if cached is not None:
            return cached
        found = await self.db.call(auth_store.find_session, token_hash=key[2:])
        if found is None:
            return None
        row, user = found
        principal = Principal(user_id=user.id, name=user.name, role=user.role, session=row.id,
                              expires_at=auth_store.aware(row.expires_at), resolved_at=time.monotonic())
        expires_in = (auth_store.aware(row.expires_at) - utcnow()).total_seconds()
        return self._remember(key, principal, min(CACHE_SECONDS, expires_in))

    async def end_session(self, token_hash: str) -> None:
        """Log out one browser login."""
        self._cache.pop("s:" + token_hash, None)
        self._ended.add(token_hash)
        self.changed.set()
        await self.db.call(auth_store.end_session, token_hash=token_hash)

    async def sync(self, open_sessions: Iterable[str]) -> None:
        """Catch up with logins and tokens ended elsewhere (another process, `lantern users`): cheap when none did.

        `open_sessions` are the session hashes of open pages; those that no longer hold are marked ended.
        """
        self.changed.clear()
        epoch = await self.db.call(auth_store.auth_epoch)
        if epoch == self._epoch:
            return
        self._epoch = epoch
        self._cache.clear()
        wanted = set(open_sessions) - self._ended
        alive = await self.db.call(auth_store.live_sessions, token_hashes=wanted)
        self._ended.update(wanted - alive)

    def session_alive(self, principal: Principal) -> bool:
        """Whether a page's login still holds (cheap; for event handlers of open pages)."""
        reset = self._reset_at.get(principal.user_id)
        if reset is not None and reset >= principal.resolved_at:
            return False
        if principal.session is None:  # the local user, or a script's token (checked on each request)
            return True
        return principal.session not in self._ended and \
            (principal.expires_at is None or principal.expires_at > utcnow())

    async def from_basic(self, name: str, password: str, address: str) -> Principal:
        """HTTP Basic credentials (throttled like the login page); successes are cached briefly."""
        key = "b:" + digest(f"{name}\0{password}")
        cached = self._cached(key)
        if cached is not None:
            return cached
        return self._remember(key, await self.login(name, password, address), CACHE_SECONDS)

    async def from_token(self, token: str) -> Principal | None:
        """The owner of a live personal API token."""
        key = "t:" + digest(token)
        cached = self._cached(key)
        if cached is not None:
            return cached
        found = await self.db.call(auth_store.use_token, token_hash=key[2:])
        if found is None:
            return None
        user, expires, record = found
        seconds = CACHE_SECONDS if expires is None else min(CACHE_SECONDS, (expires - utcnow()).total_seconds())
        return self._remember(key, replace(_principal(user), record=record), seconds)

    async def create_token(self, user_id: str, name: str, *, days: int | None = None,
                           record: bool = True) -> tuple[ApiToken, str]:
        """A new personal API token, valid for `days` or until revoked; the secret is returned this once.

        `record=False` keeps the token's /v1 calls out of History."""
        name = name.strip()
        if not name:
            raise BadInput("give the token a name, e.g. the script that will use it")
        if days is not None and not 1 <= days <= 3650:
            raise BadInput("a token lasts 1 to 3650 days, or until revoked")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires = utcnow() + timedelta(days=days) if days else None
        token = await self.db.call(auth_store.add_token, user_id=user_id, name=name[:80], token_hash=digest(secret),
                                   prefix=secret[:8], expires_at=expires, record_calls=record)
        return token, secret

    async def tokens(self, user_id: str) -> list[ApiToken]:
        """The user's tokens (hashes stay inside)."""
        return await self.db.call(auth_store.list_tokens, user_id=user_id)

    async def revoke_token(self, user_id: str, token_id: str) -> None:
        """Revoke one of the user's tokens; it stops working at once in this process."""
        if not await self.db.call(auth_store.revoke_token, user_id=user_id, token_id=token_id):
            raise NotFound(f"No live token {token_id}")
        self._cache = {k: v for k, v in self._cache.items() if not k.startswith("t:")}
        self.changed.set()

    async def users(self) -> list[User]:
        """Accounts that can log in."""
        return await self.db.call(user_repo.list_users)

    async def add_user(self, name: str, password: str, role: str) -> User:
        """A new account (admin action)."""
        name = name.strip()
        if not name or len(name) > 64 or any(c.isspace() for c in name):
            raise BadInput("a user name is 1–64 characters without spaces")
        if role not in ROLES:
            raise BadInput(f"role is one of {', '.join(ROLES)}")
        hashed = await _hashing(hash_password, password)
        try:
            return await self.db.call(user_repo.add_user, name=name, password_hash=hashed, role=role)
        except ValueError as exc:
            raise BadInput(str(exc)) from None

    async def remove_user(self, name: str) -> None:
        """Disable an account and end its logins (admin action)."""
        user = await self.db.call(user_repo.find_user, name=name)
        if user is None or not await self.db.call(user_repo.remove_user, name=name):
            raise NotFound(f"No user {name}")
        self._forget(user.id)

    async def set_password(self, name: str, password: str) -> None:
        """Change a password and end the user's other logins."""
        hashed = await _hashing(hash_password, password)
        user = await self.db.call(user_repo.find_user, name=name)
        if user is None or not await self.db.call(user_repo.set_password, name=name, password_hash=hashed):
            raise NotFound(f"No user {name}")
        self._forget(user.id)

    def _forget(self, user_id: str) -> None:
        """End a user's logins in this process: cached lookups and open pages."""
        self._cache.clear()
        self._reset_at[user_id] = time.monotonic()
        self.changed.set()

    def _throttle(self, key: str, address: str, *, trusted: bool) -> None:
        """Refuse while this name-and-address (or, for names new to it, this address) is backing off."""
        wait = self.failures.retry_after(key)
        if not trusted:
            wait = max(wait, self.failures_by_address.retry_after(address))
        if wait > 0:
            raise RateLimited(f"Too many failed attempts: try again in {int(wait) + 1} s.", retry_after=int(wait) + 1)

    def _cached(self, key: str) -> Principal | None:
        """A fresh cache entry."""
        hit = self._cache.get(key)
        if hit is None:
            return None
        if hit[1] < time.monotonic():
            self._cache.pop(key, None)
            return None
        return hit[0]

    def _remember(self, key: str, principal: Principal, seconds: float) -> Principal:
        """Cache a lookup for a short while."""
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (principal, time.monotonic() + seconds)
        return principal


def _principal(user: User) -> Principal:
    """A user as a principal."""
    return Principal(user_id=user.id, name=user.name, role=user.role, resolved_at=time.monotonic())


# Argon2 takes ~0.1 s and 64 MiB per check: at most two at a time, on threads of their own, so a burst of
# logins neither takes the machine's memory nor the default pool that llama.cpp, SQL and PDF export share.
_HASH_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")


async def _hashing(func: Callable[..., _T], *args: Any) -> _T:
    """Run a password hash or check on the hashing threads."""
    return await asyncio.get_running_loop().run_in_executor(_HASH_POOL, func, *args)
