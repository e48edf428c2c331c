"""The `lantern` command and `python -m app`."""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path

from app.settings import Settings, is_loopback


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags; anything not given falls back to settings."""
    parser = argparse.ArgumentParser(prog="lantern", description="A local-first LLM studio.",
                                     epilog="`lantern smoke --help`: check a running instance end to end; "
                                            "`lantern users --help`: accounts for shared mode.")
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8080)")
    parser.add_argument("--native", action="store_true", help="open in a native desktop window")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    parser.add_argument("--db", metavar="URL", help="database URL (default: SQLite in the data dir)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Start the app (or run `lantern smoke`), or exit non-zero with a one-line reason."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["smoke"]:
        from app.smoke import main as smoke

        smoke(argv[1:])
        return
    if argv[:1] == ["users"]:
        from app.users_cli import main as users

        users(argv[1:])
        return
    args = parse_args(argv)
    settings = Settings()
    if args.db:
        settings.database_url = args.db
    if args.host:
        settings.host = args.host
    if args.port:
        settings.port = args.port

    from nicegui import app as nicegui_app
    from nicegui import ui

    from app.context import Lantern
    from app.heap import freeze_startup_objects
    from app.main import build
    from app.slow_clients import header_deadline
    from storage.engine import DatabaseUnavailable
    from storage.users import list_users

    try:
        lantern = Lantern.create(settings)
    except DatabaseUnavailable as exc:
        print(f"lantern: {exc}", file=sys.stderr)
        sys.exit(2)
    if settings.shared and not lantern.db.session_call(list_users):
        where = f"on {settings.host}" if not is_loopback(settings.host) else "with LANTERN_REQUIRE_LOGIN"
        print(f"lantern: refusing to serve {where} without accounts: nobody could log in, and on a network anyone "
              "could use it. Create one with `lantern users add NAME --admin`, or bind to 127.0.0.1.", file=sys.stderr)
        sys.exit(2)
    build(lantern)
    nicegui_app.on_startup(freeze_startup_objects)  # the server process only: tests keep a normal collector
    ui.run(host=settings.host, port=settings.port, native=args.native, show=not args.no_browser,
           reload=False, title="Lantern", favicon="🏮", storage_secret=storage_secret(settings),
           reconnect_timeout=10.0, show_welcome_message=True, root_path=settings.root_path,
           # Open SSE streams must not hold SIGTERM off: runs are stopped after.
           timeout_graceful_shutdown=3,
           # uvicorn's HTTP protocol, but hanging up on request headers that do not finish in time.
           http=header_deadline(settings.header_timeout),
           # Any window_size switches native mode on, so only pass one when asked for a window.
           window_size=(1280, 860) if args.native else None)


def storage_secret(settings: Settings) -> str:
    """The configured secret, else one generated once and kept (0600) in the data directory."""
    if settings.storage_secret is not None:
        return settings.storage_secret.get_secret_value()
    path = Path(settings.data_dir) / "storage_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()
