"""The `openai` SDK's errors as ours, keeping the server's own explanation (without secrets).

    openai.OpenAIError
    ├── AuthenticationError, PermissionDeniedError  → ProviderAuth         (+ the server's words)
    ├── RateLimitError                              → ProviderRateLimited  (Retry-After kept)
    ├── APITimeoutError, APIConnectionError         → ProviderUnavailable
    ├── APIStatusError 5xx                          → ProviderUnavailable  (+ the server's words)
    ├── APIStatusError 404                          → ProviderBadRequest   unknown model, or a wrong base URL
    ├── APIStatusError other 4xx                    → ProviderBadRequest   (+ the server's words)
    └── anything else (e.g. an error event mid-stream) → ProviderUnavailable
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from services.core.errors import (
    ProviderAuth,
    ProviderBadRequest,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)

if TYPE_CHECKING:
    import openai

MAX_DETAIL = 300  # a server's explanation is quoted up to this many characters
# Things that look like credentials, whoever's they are: OpenAI-style keys and bearer tokens.
_SECRET = re.compile(r"\bsk-[A-Za-z0-9_\-*.]{3,}|\b(Bearer|Basic)\s+\S+", re.IGNORECASE)
_HTML = re.compile(r"^\s*<(!doctype|html|head|body)", re.IGNORECASE)


def translate_openai_error(name: str, exc: openai.OpenAIError, *, model: str = "",
                           secrets: tuple[str, ...] = ()) -> ProviderError:
    """SDK errors as ours, with a message a person can act on and the server's reason where it gave one."""
    import openai

    detail = server_detail(exc, secrets)
    said = f": {detail}" if detail else ""
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return ProviderAuth(f"{name} rejected the API key: check the key setting for {name}{said}")
    if isinstance(exc, openai.RateLimitError):
        retry = exc.response.headers.get("retry-after")
        return ProviderRateLimited(f"{name} is rate limiting requests; try again shortly{said}",
                                   retry_after=_float(retry))
    if isinstance(exc, openai.APITimeoutError):
        return ProviderUnavailable(f"{name} timed out")
    if isinstance(exc, openai.APIConnectionError):
        return ProviderUnavailable(f"cannot reach {name}: is the server running and the base URL right?")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status >= 500:
            return ProviderUnavailable(f"{name} failed on its side (HTTP {status}){said}")
        if status == 404 and names_a_model(detail):
            return ProviderBadRequest(f"{name} does not know the model '{model}' (HTTP 404){said}")
        return ProviderBadRequest(f"{name} refused the request (HTTP {status}){said}")
    if isinstance(exc, openai.APIError) and detail:  # an error event in the middle of a stream
        return ProviderUnavailable(f"{name} stream failed: {detail}")
    return ProviderUnavailable(f"{name} stream failed: {type(exc).__name__}")


def server_detail(exc: openai.OpenAIError, secrets: tuple[str, ...] = ()) -> str:
    """The server's own explanation from an error body (JSON `error.message`, `detail` or plain text), cleaned."""
    body: Any = getattr(exc, "body", None)
    text = ""
    if isinstance(body, dict):
        text = _text_of(body.get("message")) or _text_of(body.get("detail")) or _text_of(body.get("error"))
    elif isinstance(body, str) and not _HTML.match(body):
        text = body
    # The first paragraph: llama-cpp-python appends its own traceback after a blank line.
    text = " ".join(text.strip().split("\n\n")[0].split())
    text = scrub(text, secrets)
    return text if len(text) <= MAX_DETAIL else text[:MAX_DETAIL - 1] + "…"


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Text without the given secrets, any part of them long enough to matter, or anything shaped like a key."""
    for secret in secrets:
        if not secret:
            continue
        text = text.replace(secret, "[redacted]")
        if len(secret) >= 12:  # a key quoted in part ("sk-abc…6789") still gives part of it away
            text = " ".join("[redacted]" if secret[:8] in word or secret[-8:] in word else word
                            for word in text.split(" "))
    return _SECRET.sub("[redacted]", text)


def names_a_model(detail: str) -> bool:
    """Whether a 404's explanation is about the model (rather than the path)."""
    return "model" in detail.lower()


def is_html(exc: openai.OpenAIError) -> bool:
    """Whether the error body was a web page (a base URL pointing at a website or a proxy's page)."""
    body = getattr(exc, "body", None)
    return isinstance(body, str) and bool(_HTML.match(body))


def refuses_json_schema(exc: openai.OpenAIError) -> bool:
    """Whether a refusal is about `response_format` json_schema (servers without structured output)."""
    # llama-cpp-python answers 500 with its validation error, others 400 or 422; a 404 or auth failure is not it.
    import openai

    if not isinstance(exc, openai.APIStatusError) or exc.status_code in (401, 403, 404, 429):
        return False
    detail = server_detail(exc).lower()
    return "response_format" in detail or "json_schema" in detail


def _text_of(value: Any) -> str:
    """An explanation field as text: a string, FastAPI's list of validation errors, or a nested message."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return _text_of(value.get("message") or value.get("msg"))
    if isinstance(value, list):
        return "; ".join(t for t in (_text_of(v) for v in value) if t)
    return ""


def _float(value: str | None) -> float | None:
    """A header value as seconds, if numeric."""
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
