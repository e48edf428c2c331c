"""Behind a reverse proxy, the one-local-user mode would serve everyone who reaches the proxy: it refuses instead."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import AppProcess
from tests.security.conftest import SharedApp

PROXIED = [{"X-Forwarded-For": "203.0.113.7"}, {"Forwarded": "for=203.0.113.7;proto=https"},
           {"X-Real-IP": "203.0.113.7"}, {"X-Forwarded-Host": "lantern.example.org"}]
PAGE = {"Accept": "text/html"}


@pytest.fixture(scope="module")
def local_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    """The app as on a laptop: loopback, no login."""
    data: Path = tmp_path_factory.mktemp("local") / "data"
    proc = AppProcess(data, {"LANTERN_DEFAULT_MODEL": "scripted/hello"})
    proc.wait_ready()
    yield proc
    proc.stop()


@pytest.mark.parametrize("headers", PROXIED, ids=lambda h: next(iter(h)))
def test_a_proxied_page_request_is_refused_with_what_to_set(local_app: AppProcess, headers: dict[str, str]) -> None:
    response = httpx.get(f"{local_app.url}/", headers={**PAGE, **headers}, timeout=10)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/plain")
    assert "LANTERN_REQUIRE_LOGIN=1" in response.text and "lantern users add" in response.text
    assert "Ask anything" not in response.text


@pytest.mark.parametrize("headers", PROXIED, ids=lambda h: next(iter(h)))
def test_a_proxied_api_request_is_refused_in_the_api_shape(local_app: AppProcess, headers: dict[str, str]) -> None:
    for method, path in (("GET", "/api/conversations"), ("POST", "/api/chat")):
        body = {"messages": [{"role": "user", "content": "hi"}]} if method == "POST" else None
        response = httpx.request(method, f"{local_app.url}{path}", headers=headers, json=body, timeout=10)
        assert response.status_code == 403, f"{method} {path}"
        error = response.json()["error"]
        assert error["type"] == "proxied_without_login"
        assert "LANTERN_REQUIRE_LOGIN=1" in error["message"]


def test_a_proxied_websocket_is_refused(local_app: AppProcess) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect
    from websockets.typing import Origin

    url = local_app.url.replace("http://", "ws://") + "/_nicegui_ws/socket.io/?EIO=4&transport=websocket"
    proxied = {"X-Forwarded-For": "203.0.113.7"}
    origin = Origin(local_app.url)
    with pytest.raises(InvalidStatus) as refused, connect(url, origin=origin, additional_headers=proxied,
                                                          open_timeout=10):
        pass
    assert refused.value.response.status_code == 403
    with connect(url, origin=origin, open_timeout=10) as ws:
        assert str(ws.recv(timeout=10)).startswith("0")  # without forwarding headers: engine.io's open packet


def test_direct_requests_are_served(local_app: AppProcess) -> None:
    with httpx.Client(base_url=local_app.url, timeout=10) as client:
        assert client.get("/", headers=PAGE).status_code == 200
        assert client.get("/api/conversations").status_code == 200
        assert client.get("/health", headers={"X-Forwarded-For": "203.0.113.7"}).status_code == 200  # probes pass


def test_shared_mode_serves_proxied_requests(shared_app: SharedApp) -> None:
    with shared_app.login("ada") as client:
        for headers in PROXIED:
            assert client.get("/", headers={**PAGE, **headers}).status_code == 200
            assert client.get("/api/conversations", headers=headers).status_code == 200
