"""With login off, only this machine's own names are answered (DNS rebinding); anonymous login-page builds are
counted per address in shared mode."""

from __future__ import annotations

import httpx
import pytest

from app.gate import LOGIN_PAGES_PER_MINUTE
from tests.conftest import AppProcess
from tests.security.conftest import SharedApp


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "192.168.1.20", "[2001:db8::1]:80"])
def test_a_foreign_host_name_is_refused_on_a_laptop(app_process: AppProcess, host: str) -> None:
    # A page at evil.example that re-pointed its name at 127.0.0.1 sends exactly this Host header.
    for path in ("/", "/api/conversations"):
        response = httpx.get(f"{app_process.url}{path}", headers={"Host": host})
        assert response.status_code == 403, (path, response.status_code)  # before: 200, the conversations
        assert "LANTERN_ALLOWED_HOSTS" in response.text


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "app.localhost", "[::1]"])
def test_loopback_names_are_served(app_process: AppProcess, host: str) -> None:
    port = app_process.url.rsplit(":", 1)[1]
    response = httpx.get(f"{app_process.url}/api/conversations", headers={"Host": f"{host}:{port}"})
    assert response.status_code == 200


def test_a_name_allowed_by_setting_is_served(tmp_path) -> None:
    proc = AppProcess(tmp_path / "data", {"LANTERN_ALLOWED_HOSTS": '["studio.lan"]'})
    proc.wait_ready()
    try:
        assert httpx.get(f"{proc.url}/api/conversations", headers={"Host": "studio.lan"}).status_code == 200
        assert httpx.get(f"{proc.url}/api/conversations", headers={"Host": "other.lan"}).status_code == 403
    finally:
        proc.stop()


def test_shared_mode_answers_any_host_name(shared_app: SharedApp) -> None:
    ada = shared_app.login("ada")
    assert ada.get("/api/conversations", headers={"Host": "lantern.corp"}).status_code == 200


def test_login_page_builds_are_throttled_per_address(shared_app: SharedApp) -> None:
    with httpx.Client(base_url=shared_app.url, headers={"Accept": "text/html"}) as anonymous:
        codes = [anonymous.get("/login").status_code for _ in range(LOGIN_PAGES_PER_MINUTE + 5)]
    assert codes[:LOGIN_PAGES_PER_MINUTE] == [200] * LOGIN_PAGES_PER_MINUTE
    assert set(codes[LOGIN_PAGES_PER_MINUTE:]) == {429}  # before: every one built a page (~110 KiB each)
    ada = shared_app.login("ada")  # logged-in pages are not counted
    assert ada.get("/settings", headers={"Accept": "text/html"}).status_code == 200
