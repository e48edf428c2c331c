"""MCP server configurations: parsing, validation, masking for display, tool names, and where they are saved.

A configuration names a stdio command (with args and env) or a streamable-HTTP URL (with headers).
Env values and header values are secrets: `public()` masks them for display, `secrets()` lists them
so every message from or about the server can be scrubbed of them (`scrub()`). No SDK import here.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlmodel import Session, col, select

from services.tools.base import ToolError
from storage.models import LOCAL_USER_ID, Preset
from storage.presets import list_presets, save_preset

MASK = "***"
SERVER_KIND = "mcp_server"  # presets holding servers an admin added at run time
ACCESS_KIND = "mcp_access"  # presets holding an admin's allow list for a server from the settings
NAME_MAX = 30  # leaves 32 characters of the 64 providers allow for the tool's own name
TOOL_NAME_MAX = 64  # OpenAI, Anthropic and Bedrock all accept ^[a-zA-Z0-9_-]{1,64}$
SEPARATOR = "__"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class McpUnavailable(ToolError):
    """An MCP server cannot be started or reached; the message says why (the model reads it, too)."""


class McpServerConfig(BaseModel):
    """One server: `command` (stdio) or `url` (streamable HTTP), with its timeouts and allowed users."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["stdio", "http", "streamable-http", "streamable_http"] | None = None  # inferred if absent
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(30.0, gt=0, le=3600, description="How long one tool call may take")
    connect_timeout_s: float = Field(30.0, gt=0, le=600, description="How long starting the server may take")
    users: list[str] | None = Field(None, description="User ids allowed to use the server; absent: everyone")

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        """Exactly one of command and url, matching `type` when given."""
        if bool(self.command) == bool(self.url):
            raise ValueError("give either command (a stdio server) or url (a streamable-HTTP server)")
        if self.type is not None and (self.type == "stdio") != bool(self.command):
            raise ValueError(f"type {self.type} does not match: stdio takes command, http takes url")
        if self.url and urlsplit(self.url).scheme not in ("http", "https"):
            raise ValueError("url must start with http:// or https://")
        return self

    @property
    def transport(self) -> str:
        """`stdio` or `http`."""
        return "stdio" if self.command else "http"


def validate_name(name: str) -> str:
    """The server name, or ValueError saying what a name may be."""
    if not (0 < len(name) <= NAME_MAX and _NAME.match(name)) or SEPARATOR in name or name.endswith("_"):
        raise ValueError(f"server name {name!r} must be 1-{NAME_MAX} letters, digits, '-' or single '_' "
                         "(it prefixes its tools' names)")
    return name


def parse_config(name: str, raw: Any) -> McpServerConfig:
    """A validated configuration, or ValueError naming the problem without echoing any value."""
    validate_name(name)
    try:
        return McpServerConfig.model_validate(raw)
    except ValidationError as exc:  # its default text repeats the input, which may hold secrets
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"invalid configuration for MCP server {name}: {problems}") from None


def read_settings(servers: dict[str, Any], file: Path | None) -> dict[str, Any]:
    """Raw configurations by name: the file's (`{"name": {...}}` or `{"mcpServers": {...}}`), then the JSON's."""
    raw: dict[str, Any] = {}
    if file is not None:
        try:
            loaded = json.loads(Path(file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"LANTERN_MCP_FILE {file} cannot be read as JSON: {type(exc).__name__}") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"LANTERN_MCP_FILE {file} must hold a JSON object of servers by name")
        raw.update(loaded.get("mcpServers", loaded))
    raw.update(servers)
    return raw


def public(config: McpServerConfig) -> dict[str, Any]:
    """The configuration as shown to a person or client: env, header and URL secrets masked."""
    shown = config.model_dump(exclude_none=True, exclude={"users"})
    shown["env"] = dict.fromkeys(config.env, MASK)
    shown["headers"] = dict.fromkeys(config.headers, MASK)
    if config.url:
        shown["url"] = _masked_url(config.url)
    return shown


def unmask(raw: Any, previous: McpServerConfig) -> Any:
    """A form's configuration with masked values (as `public()` showed them) taken from the saved one."""
    if not isinstance(raw, dict):
        return raw
    merged = dict(raw)
    for key in ("env", "headers"):
        given, old = raw.get(key), getattr(previous, key)
        if isinstance(given, dict):
            merged[key] = {k: old[k] if v == MASK and k in old else v for k, v in given.items()}
    if previous.url and raw.get("url") == _masked_url(previous.url):
        merged["url"] = previous.url
    return merged


def secrets(config: McpServerConfig) -> list[str]:
    """Every value that must not be shown: env and header values, their tokens, URL password and query values."""
    found = [*config.env.values(), *config.headers.values()]
    found += [word for value in config.headers.values() for word in value.split()]  # "Bearer <token>"
    if config.url:
        parts = urlsplit(config.url)
        found += [parts.password or "", *(value for _, value in parse_qsl(parts.query))]
    # Short values ("1", "true") would scrub ordinary words; the longest go first so no fragment survives.
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


def scrub(text: str, hidden: list[str]) -> str:
    """`text` with each secret replaced by a mask."""
    for secret in hidden:
        text = text.replace(secret, MASK)
    return text


def guard_logs(hidden: list[str]) -> None:
    """Scrub these secrets from what the HTTP and MCP libraries log (httpx logs each request's URL at INFO)."""
    _LOG_GUARD.hidden.update(hidden)
    for name in _GUARDED_LOGGERS:
        logger = logging.getLogger(name)
        if _LOG_GUARD not in logger.filters:
            logger.addFilter(_LOG_GUARD)


class _ScrubSecrets(logging.Filter):
    """Rewrites a record's message and traceback without the secrets of configured MCP servers."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub, never drop."""
        if self.hidden:
            ordered = sorted(self.hidden, key=len, reverse=True)
            record.msg, record.args = scrub(record.getMessage(), ordered), ()
            if record.exc_info and not record.exc_text:  # formatters use exc_text as given
                record.exc_text = scrub(logging.Formatter().formatException(record.exc_info), ordered)
        return True


# Filters apply to the logger they are added to, not its children: each logger that may print a URL or error.
_GUARDED_LOGGERS = ("httpx", "httpcore", "mcp.client.streamable_http", "mcp.client.stdio", "mcp.shared.session",
                    "mcp.client.session")
_LOG_GUARD = _ScrubSecrets()


def tool_name(server: str, tool: str, taken: set[str]) -> str:
    """`server__tool`, made of the characters providers accept, at most 64 long, unique among `taken`."""
    base = f"{server}{SEPARATOR}{_UNSAFE.sub('_', tool) or 'tool'}"[:TOOL_NAME_MAX]
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base[:TOOL_NAME_MAX - len(str(n)) - 1]}_{n}"
    return name


def server_of(tool: str) -> str | None:
    """The server a namespaced tool name belongs to, or None for a built-in name."""
    server, sep, _ = tool.partition(SEPARATOR)
    return server if sep else None


def _masked_url(url: str) -> str:
    """The URL with its password and query values masked."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password:
        netloc = netloc.replace(f":{parts.password}@", f":{MASK}@")
    query = urlencode([(key, MASK) for key, _ in parse_qsl(parts.query)], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


# ---- saved servers (presets of the local/admin user) -----------------------------------------------------


def load_saved(session: Session) -> tuple[dict[str, Any], dict[str, list[str] | None]]:
    """Servers added at run time (raw configs by name), and allow lists set for servers from the settings."""
    added = {p.name: p.config for p in list_presets(session, user_id=LOCAL_USER_ID, kind=SERVER_KIND)}
    access = {p.name: p.config.get("users") for p in list_presets(session, user_id=LOCAL_USER_ID, kind=ACCESS_KIND)}
    return added, access


def save_server(session: Session, *, name: str, config: dict[str, Any]) -> None:
    """Save (or replace) a server added at run time."""
    save_preset(session, user_id=LOCAL_USER_ID, kind=SERVER_KIND, name=name, config=config)


def save_access(session: Session, *, name: str, users: list[str] | None) -> None:
    """Save the allow list of a server from the settings."""
    save_preset(session, user_id=LOCAL_USER_ID, kind=ACCESS_KIND, name=name, config={"users": users})


def delete_saved(session: Session, *, name: str) -> None:
    """Forget a server added at run time, and any allow list saved for that name."""
    for preset in session.exec(select(Preset).where(Preset.user_id == LOCAL_USER_ID, Preset.name == name,
                                                    col(Preset.kind).in_((SERVER_KIND, ACCESS_KIND)))):
        session.delete(preset)
    session.flush()
