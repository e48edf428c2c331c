"""Anthropic's errors as ours: the server's own explanation kept (secrets removed), and what to do about it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from services.core.errors import (
    ProviderAuth,
    ProviderBadRequest,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)

if TYPE_CHECKING:
    import anthropic

# The HTTP status each error type of Anthropic's comes with, for errors reported inside a stream.
STATUS_OF_ERROR = {"invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
                   "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
                   "rate_limit_error": 429, "api_error": 500, "timeout_error": 504, "overloaded_error": 529}
SECRET_SHAPES = re.compile(r"sk-[A-Za-z0-9_-]{6,}|(?i:bearer)\s+\S+")


def translate_anthropic_error(exc: anthropic.AnthropicError, *, secret: str | None = None,
                              base_url: str | None = None) -> ProviderError:
    """SDK errors as ours, with the server's own explanation (secrets removed) and what to do about it."""
    import anthropic

    if isinstance(exc, anthropic.APITimeoutError):
        return ProviderUnavailable("Anthropic timed out; try again (LANTERN_PROVIDER_TIMEOUT sets how long to wait)")
    if isinstance(exc, anthropic.APIConnectionError):
        return ProviderUnavailable("cannot reach Anthropic: check the network, and the base URL if one is set")
    if not isinstance(exc, anthropic.APIError):
        return ProviderUnavailable(f"Anthropic stream failed: {type(exc).__name__}")
    kind, said = server_says(exc.body, secret)
    status = exc.status_code if isinstance(exc, anthropic.APIStatusError) else None
    code = status or STATUS_OF_ERROR.get(kind or "", 500)
    where = f" (HTTP {status})" if status else " mid-reply"
    said = f": {said}" if said else ""
    if code in (401, 403):
        return ProviderAuth(f"Anthropic rejected the API key{where}{said}. Check ANTHROPIC_API_KEY")
    if code == 429:
        retry = exc.response.headers.get("retry-after") if isinstance(exc, anthropic.APIStatusError) else None
        return ProviderRateLimited(f"Anthropic is rate limiting requests{where}{said}; try again shortly",
                                   retry_after=_seconds(retry))
    if code == 529 or kind == "overloaded_error":
        return ProviderUnavailable(f"Anthropic is overloaded{where}{said}; try again shortly")
    if code >= 500 or code == 408:
        return ProviderUnavailable(f"Anthropic failed on its side{where}{said}")
    if code == 404 and kind == "not_found_error" and "model" in said.lower():
        return ProviderBadRequest(f"Anthropic does not know that model{where}{said}")
    if code == 404:
        hint = ("; the base URL should not end in /v1 (the SDK adds /v1/messages)"
                if (base_url or "").rstrip("/").endswith("/v1") else "; check the base URL")
        return ProviderBadRequest(f"Anthropic answered not found{where}{said}{hint}")
    return ProviderBadRequest(f"Anthropic refused the request{where}{said}")


def server_says(body: object, secret: str | None = None) -> tuple[str | None, str]:
    """The error type and message in an error body (Anthropic's JSON, or a proxy's text), safe to show."""
    kind: str | None = None
    message: object = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            kind, message = error.get("type"), error.get("message")
        else:
            message = error if isinstance(error, str) else body.get("message")
    elif isinstance(body, str):
        message = re.sub(r"<[^>]*>", " ", body)  # a proxy's HTML page: its words only
    if not isinstance(message, str):
        return (kind if isinstance(kind, str) else None), ""
    words = SECRET_SHAPES.sub("[redacted]", message.replace(secret, "[redacted]") if secret else message).split()
    if secret and len(secret) >= 12:  # a key quoted in part ("sk-ant-a…89abcdef") still gives part of it away
        words = ["[redacted]" if secret[:8] in w or secret[-8:] in w else w for w in words]
    message = " ".join(words)
    return (kind if isinstance(kind, str) else None), (message[:300] + "…" if len(message) > 300 else message)


def _seconds(value: str | None) -> float | None:
    """A Retry-After header as seconds, if numeric."""
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
