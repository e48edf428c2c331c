"""nginx.conf for the end-to-end tests: docs/DEPLOY.md's blocks, as written, inside a complete config."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import free_port, stop_process

DOC = Path(__file__).resolve().parents[2] / "docs" / "DEPLOY.md"


def doc_blocks(fence: str) -> tuple[str, str]:
    """The http-context and server-context blocks the doc fences as ```<fence>."""
    blocks = re.findall(rf"```{fence}\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 2, f"docs/DEPLOY.md should show two `{fence}` blocks (http context, server context)"
    return blocks[0], blocks[1]


def wrap(workdir: Path, listen_port: int, http_block: str, server_block: str, *, connections: int = 256,
         log_format: str = "") -> str:
    """A complete nginx.conf in the foreground, writing only under `workdir`, listening on loopback."""
    user = "user root;" if os.geteuid() == 0 else ""  # workers must read and write the temp dirs below
    temp = "\n".join(f"    {name}_temp_path {workdir / name};" for name in
                     ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    access = (f"    log_format lantern '{log_format}';\n    access_log {workdir / 'access.log'} lantern;"
              if log_format else f"    access_log {workdir / 'access.log'};")
    return f"""
{user}
worker_processes 1;
daemon off;
master_process on;
pid {workdir / "nginx.pid"};
error_log {workdir / "error.log"} warn;
events {{ worker_connections {connections}; }}
http {{
{access}
{temp}
{http_block}
    server {{
        listen 127.0.0.1:{listen_port};
        server_name localhost;
        location = /nginx-alive {{ return 204; }}
{server_block}
    }}
}}
"""


class NginxProcess:
    """nginx in the foreground on 127.0.0.1 with its own prefix directory, stopped by pid."""

    def __init__(self, binary: str, workdir: Path, make_conf: Callable[[Path, int], str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "nginx.conf"
        self.access = workdir / "access.log"
        self.log = workdir / "error.log"
        self.conf.write_text(make_conf(workdir, self.port))
        self.proc = subprocess.Popen([binary, "-p", str(workdir), "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                httpx.get(f"{self.url}/nginx-alive", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"nginx did not start:\n{self.log.read_text() if self.log.exists() else ''}")

    def stop(self) -> None:
        """Fast shutdown of the master we started (its workers go with it)."""
        stop_process(self.proc)
