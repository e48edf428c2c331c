"""Issue #16, item 4: Strict-Transport-Security over HTTPS only (a loopback or intranet Lantern is plain HTTP)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.security import SecurityHeaders
from tests.security.conftest import SharedApp


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The smallest ASGI app: 200, `hi`."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hi"})


@pytest.mark.parametrize(("base_url", "expected"), [
    ("https://lantern.example", "max-age=31536000"),
    ("http://lantern.example", None),
])
async def test_hsts_only_over_https(base_url: str, expected: str | None) -> None:
    transport = httpx.ASGITransport(app=SecurityHeaders(hello))
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
        response = await client.get("/")
    assert response.status_code == 200 and response.text == "hi"
    assert response.headers.get("strict-transport-security") == expected
    assert "content-security-policy" in response.headers  # the other headers either way


def test_a_trusted_proxy_saying_https_gets_hsts(shared_app: SharedApp) -> None:
    """uvicorn trusts X-Forwarded-Proto from loopback by default, as from a proxy on the same host."""
    client = shared_app.login("ada")
    assert "strict-transport-security" not in client.get("/health").headers
    proxied = client.get("/health", headers={"X-Forwarded-Proto": "https"})
    assert proxied.headers.get("strict-transport-security") == "max-age=31536000"
