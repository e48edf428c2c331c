"""`lantern users add|list|remove|passwd`: accounts for shared mode; passwords are prompted, never echoed."""

from __future__ import annotations

import argparse
import getpass
import sys

from app.settings import Settings
from services.accounts.passwords import hash_password
from services.core.errors import BadInput
from storage import users as repo
from storage.engine import Database, DatabaseUnavailable


def main(argv: list[str]) -> None:
    """Manage accounts in the configured database."""
    parser = argparse.ArgumentParser(prog="lantern users", description="Manage accounts for shared mode.")
    parser.add_argument("--db", metavar="URL", help="database URL (default: as the app)")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="create an account (password prompted)")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="may manage users, keys and prices")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    sub.add_parser("list", help="list accounts")
    remove = sub.add_parser("remove", help="disable an account")
    remove.add_argument("name")
    passwd = sub.add_parser("passwd", help="change a password (prompted)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    args = parser.parse_args(argv)
    settings = Settings()
    db = Database(args.db or settings.resolved_database_url)
    try:
        db.open()
        sys.exit(_run(db, args))
    except DatabaseUnavailable as exc:
        print(f"lantern users: {exc}", file=sys.stderr)
        sys.exit(2)
    finally:
        db.close()


def _run(db: Database, args: argparse.Namespace) -> int:
    """Carry out one command; returns the exit code."""
    try:
        if args.command == "list":
            for user in db.session_call(repo.list_users):
                print(f"{user.name}\t{user.role}\t{user.created_at:%Y-%m-%d}")
            return 0
        if args.command == "remove":
            if not db.session_call(repo.remove_user, name=args.name):
                print(f"lantern users: no user named '{args.name}'", file=sys.stderr)
                return 1
            print(f"removed {args.name}; their logins and API tokens have ended")
            return 0
        hashed = hash_password(_password(args.password_stdin))
        if args.command == "add":
            db.session_call(repo.add_user, name=args.name, password_hash=hashed,
                            role="admin" if args.admin else "member")
            print(f"added {args.name} ({'admin' if args.admin else 'member'})")
        elif not db.session_call(repo.set_password, name=args.name, password_hash=hashed):
            print(f"lantern users: no user named '{args.name}'", file=sys.stderr)
            return 1
        else:
            print(f"password changed for {args.name}; their logins and API tokens have ended")
        return 0
    except (BadInput, ValueError) as exc:
        print(f"lantern users: {exc}", file=sys.stderr)
        return 1


def _password(from_stdin: bool) -> str:
    """Read a password: prompted twice without echo, or one line of standard input."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat: ") != first:
        raise ValueError("the passwords differ")
    return first
