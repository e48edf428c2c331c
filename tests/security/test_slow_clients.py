"""Slow clients (slowloris): request headers and bodies that never finish are cut off; long responses are not."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import AppProcess

TIMEOUT = 2  # seconds, for both the headers and each gap in a body
PATIENCE = 12.0  # how long a test waits for the server to give up: far past TIMEOUT, so load cannot flake it
HELLO = json.dumps({"messages": [{"role": "user", "content": "hi"}], "model": "scripted/hello"}).encode()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    """One app, not shared, with short header and body timeouts."""
    data: Path = tmp_path_factory.mktemp("slow") / "data"
    proc = AppProcess(data, {"LANTERN_HEADER_TIMEOUT": str(TIMEOUT), "LANTERN_BODY_TIMEOUT": str(TIMEOUT),
                             "LANTERN_DEFAULT_MODEL": "scripted/hello"})
    proc.wait_ready()
    yield proc
    proc.stop()


def test_a_connection_that_sends_nothing_is_closed(app: AppProcess) -> None:
    with connect(app) as sock:
        waited = closed_within(sock, PATIENCE)
    print(f"silent connection: closed after {waited:.1f} s")
    assert waited < PATIENCE, f"a connection that sent nothing was still open after {PATIENCE:.0f} s"


def test_headers_that_never_finish_are_cut_off(app: AppProcess) -> None:
    with connect(app) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        waited = closed_within(sock, PATIENCE)
    print(f"partial headers: closed after {waited:.1f} s")
    assert waited < PATIENCE, f"the server still waited for the rest of the headers after {PATIENCE:.0f} s"


def test_headers_trickled_byte_by_byte_are_cut_off(app: AppProcess) -> None:
    """Each byte comes well within the timeout; the headers as a whole do not."""
    started = time.monotonic()
    with connect(app) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        with pytest.raises(OSError):  # the server hangs up: a reset, a broken pipe, or EOF below
            while time.monotonic() - started < PATIENCE:
                sock.sendall(b"X")
                time.sleep(0.2)
                sock.setblocking(False)
                try:
                    if sock.recv(1024) == b"":
                        raise ConnectionResetError("closed by the server")
                except BlockingIOError:
                    pass
                finally:
                    sock.setblocking(True)
    print(f"trickled headers: closed after {time.monotonic() - started:.1f} s")


def test_a_body_that_stalls_gets_408(app: AppProcess) -> None:
    with connect(app) as sock:
        sock.sendall(b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n" + b'{"message')
        started = time.monotonic()
        sock.settimeout(PATIENCE)
        try:
            answer = sock.recv(4096)
        except TimeoutError:
            pytest.fail(f"the server still waits for the body after {PATIENCE:.0f} s")
        print(f"stalled body: answered after {time.monotonic() - started:.1f} s: {answer[:60]!r}")
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert closed_within(sock, PATIENCE) < PATIENCE, "the connection stayed open after the 408"


def test_a_slow_but_steady_request_succeeds(app: AppProcess) -> None:
    """Headers well within the timeout, the body in pieces, each gap short but the whole longer than the timeout."""
    head = (f"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(HELLO)}\r\n\r\n").encode()
    started = time.monotonic()
    with connect(app) as sock:
        for part in (head[:20], head[20:]):
            sock.sendall(part)
            time.sleep(0.4)
        for i in range(0, len(HELLO), 8):
            sock.sendall(HELLO[i:i + 8])
            time.sleep(0.4)
        sock.settimeout(PATIENCE)
        answer = sock.recv(65536)
    assert time.monotonic() - started > TIMEOUT, "the test sent too fast to show anything"
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    # The connection stays usable (keep-alive) after a slow request.
    with httpx.Client(base_url=app.url, timeout=10) as client:
        assert client.get("/health").status_code == 200


def test_an_event_stream_outlives_the_timeouts(app: AppProcess) -> None:
    """The `slow` script streams for ~8 s: reading the request is timed, never the response."""
    body = {"messages": [{"role": "user", "content": "Talk for a while"}], "model": "scripted/slow"}
    started = time.monotonic()
    events: list[str] = []
    with httpx.stream("POST", f"{app.url}/api/chat/stream", json=body, timeout=30) as response:
        assert response.status_code == 200
        events = [line.removeprefix("event: ") for line in response.iter_lines() if line.startswith("event: ")]
    assert time.monotonic() - started > 2 * TIMEOUT
    assert events[-1] == "done" and events.count("text.delta") > 50, events[-3:]


def test_a_websocket_outlives_the_timeouts(app: AppProcess) -> None:
    from websockets.sync.client import connect as ws_connect
    from websockets.typing import Origin

    url = app.url.replace("http://", "ws://") + "/_nicegui_ws/socket.io/?EIO=4&transport=websocket"
    with ws_connect(url, origin=Origin(app.url), open_timeout=10) as ws:
        assert str(ws.recv(timeout=10)).startswith("0")  # engine.io's open packet
        time.sleep(2 * TIMEOUT + 1)
        ws.send("40")  # socket.io connect: any socket.io answer shows the socket is still open
        assert str(ws.recv(timeout=10)).startswith("4")


def connect(app: AppProcess) -> socket.socket:
    """A raw TCP connection to the app."""
    return socket.create_connection(("127.0.0.1", app.port), timeout=10)


def closed_within(sock: socket.socket, limit: float) -> float:
    """Seconds until the server closed the connection (reading it to EOF), or `limit` if it did not."""
    started = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return limit
    except ConnectionResetError:
        pass
    return time.monotonic() - started
