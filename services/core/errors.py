"""Our error tree, each with its HTTP status; providers translate SDK errors into these, raised `from` the original.

    LanternError
    ├── UnknownModel          no provider/model by that name
    ├── BadInput              the request itself is wrong (empty prompt, bad config)
    │   └── BadField              ... in one named field (the /v1 endpoint reports it as `param`)
    ├── NotFound              no such item for this user
    ├── Conflict              the item exists but its state forbids this (e.g. changing a finished run)
    ├── RateLimited           too many runs or login attempts (carries retry_after)
    ├── NotAuthenticated      no valid login, session or token
    ├── Forbidden             a request from a place that may not make it (another site, a proxy without login)
    ├── RunUnreachable        the replica driving a run does not answer (it died)
    ├── TokenCapReached       a run went past the per-run token cap
    ├── StepFailed            a pipeline step gave no valid answer within its retries
    ├── GenerationFailed      Studio could not produce any deliverable
    ├── ExportUnavailable     a format cannot be produced here (PDF without WeasyPrint)
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
    status = 500  # the HTTP status the API answers with (app/api/errors.py)
    retryable = False


class UnknownModel(LanternError):
    """No provider/model by that name."""

    kind = "unknown_model"
    status = 400


class BadInput(LanternError):
    """The request is wrong; the message says how."""

    kind = "bad_input"
    status = 400


class BadField(BadInput):
    """A request field is wrong; `param` names it the way the client wrote it."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class NotFound(LanternError):
    """No such item for this user (others' items do not exist for them)."""

    kind = "not_found"
    status = 404


class Conflict(LanternError):
    """The item exists but is not in a state that allows this."""

    kind = "conflict"
    status = 409


class RateLimited(LanternError):
    """Too many requests from this user or address; `retry_after` says when to try again."""

    kind = "rate_limited"
    status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotAuthenticated(LanternError):
    """No valid login, session or token."""

    kind = "unauthenticated"
    status = 401


class Forbidden(LanternError):
    """The request came from where it may not: another site's page, or through a proxy with login off."""

    kind = "forbidden"
    status = 403


class RunUnreachable(LanternError):
    """The replica driving a run does not answer (replica mode: it died; its lease will run out)."""

    kind = "replica_unavailable"
    status = 503


class TokenCapReached(LanternError):
    """A run went past the per-run token cap."""

    kind = "token_cap"


class StepFailed(LanternError):
    """A step could not produce a valid answer within its retries."""

    kind = "step_failed"


class GenerationFailed(LanternError):
    """No deliverable could be produced (the chain was exhausted or every output was invalid)."""

    kind = "generation_failed"


class ExportUnavailable(LanternError):
    """This export format cannot be produced here (a library or system package is missing)."""

    kind = "export_unavailable"
    status = 501


class ProviderError(LanternError):
    """A provider call failed."""

    kind = "provider_error"
    status = 502


class ProviderAuth(ProviderError):
    """Missing or rejected credentials."""

    kind = "auth"
    status = 503


class ProviderBadRequest(ProviderError):
    """The provider refused the request as invalid."""

    kind = "bad_request"
    status = 400


class ProviderRateLimited(ProviderError):
    """The provider asked us to slow down."""

    kind = "rate_limited"
    status = 429
    retryable = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    """The provider could not be reached or failed on its side."""

    kind = "unavailable"
    status = 502
    retryable = True


def error_of_kind(kind: str, message: str) -> LanternError:
    """One of our errors from its wire `type` (an answer from another replica), LanternError if unknown."""
    found = [cls for cls in _all_errors() if cls.kind == kind]
    return found[0](message) if found and found[0] not in (RateLimited,) else LanternError(message)


def _all_errors() -> list[type[LanternError]]:
    """Every error class, most specific first."""
    seen: list[type[LanternError]] = []
    todo: list[type[LanternError]] = [LanternError]
    while todo:
        cls = todo.pop()
        seen.append(cls)
        todo.extend(cls.__subclasses__())
    return list(reversed(seen))
