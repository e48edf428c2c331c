"""Our error tree; providers translate SDK errors into these, raised `from` the original.

    LanternError
    ├── UnknownModel          no provider/model by that name
    ├── BadInput              the request itself is wrong (empty prompt, bad config)
    ├── NotFound              no such item for this user
    ├── Conflict              the item exists but its state forbids this (e.g. changing a finished run)
    ├── RateLimited           too many runs or login attempts (carries retry_after)
    ├── NotAuthenticated      no valid login, session or token
    ├── Forbidden             a request from a place that may not make it (another site, a proxy without login)
    └── ProviderError         a provider call failed
        ├── ProviderAuth          missing/invalid key (not retryable)
        ├── ProviderBadRequest    the provider refused the request (not retryable)
        ├── ProviderRateLimited   429 (retryable, may carry retry_after)
        └── ProviderUnavailable   network, 5xx, timeout, unloadable model (retryable)
"""

from __future__ import annotations


class LanternError(Exception):
    """Base of our errors; `kind` is the wire `type`, the message is safe to show."""

    kind = "error"
    retryable = False


class UnknownModel(LanternError):
    """No provider/model by that name."""

    kind = "unknown_model"


class BadInput(LanternError):
    """The request is wrong; the message says how."""

    kind = "bad_input"


class NotFound(LanternError):
    """No such item for this user (others' items do not exist for them)."""

    kind = "not_found"


class Conflict(LanternError):
    """The item exists but is not in a state that allows this."""

    kind = "conflict"


class RateLimited(LanternError):
    """Too many requests from this user or address; `retry_after` says when to try again."""

    kind = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotAuthenticated(LanternError):
    """No valid login, session or token."""

    kind = "unauthenticated"


class Forbidden(LanternError):
    """The request came from where it may not: another site's page, or through a proxy with login off."""

    kind = "forbidden"


class ProviderError(LanternError):
    """A provider call failed."""

    kind = "provider_error"


class ProviderAuth(ProviderError):
    """Missing or rejected credentials."""

    kind = "auth"


class ProviderBadRequest(ProviderError):
    """The provider refused the request as invalid."""

    kind = "bad_request"


class ProviderRateLimited(ProviderError):
    """The provider asked us to slow down."""

    kind = "rate_limited"
    retryable = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    """The provider could not be reached or failed on its side."""

    kind = "unavailable"
    retryable = True
