"""One settings object for the whole app, read from the environment and `.env`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """Per-user data directory (XDG on Linux, ~/.lantern elsewhere)."""
    import os  # only here: the XDG base is not a Lantern setting

    xdg = os.environ.get("XDG_DATA_HOME")
    return Path(xdg) / "lantern" if xdg else Path.home() / ".local" / "share" / "lantern"


class CompatEndpoint(BaseSettings):
    """A named OpenAI-compatible server (Ollama, vLLM, Groq...)."""

    model_config = SettingsConfigDict(extra="forbid")

    base_url: str
    api_key: SecretStr | None = None
    models: list[str] = Field(default_factory=list)
    supports_tools: bool = True


class Settings(BaseSettings):
    """Everything configurable; SDK variables keep their standard names."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir, validation_alias="LANTERN_DATA_DIR")
    default_model: str = Field("local/smollm2", validation_alias="LANTERN_DEFAULT_MODEL")
    database_url: str | None = Field(None, validation_alias="DATABASE_URL")
    host: str = Field("127.0.0.1", validation_alias="LANTERN_HOST")
    port: int = Field(8080, validation_alias="LANTERN_PORT")
    storage_secret: SecretStr | None = Field(None, validation_alias="LANTERN_STORAGE_SECRET")
    # Several processes on one PostgreSQL behind a load balancer (docs/DEPLOY.md); refused on SQLite.
    replica_mode: bool = Field(False, validation_alias="LANTERN_REPLICA_MODE")

    openai_api_key: SecretStr | None = Field(None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(None, validation_alias="OPENAI_BASE_URL")
    anthropic_api_key: SecretStr | None = Field(None, validation_alias="ANTHROPIC_API_KEY")
    aws_region: str | None = Field(
        None, validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )
    bedrock_models: list[str] = Field(
        default_factory=lambda: ["anthropic.claude-3-haiku-20240307-v1:0"],
        validation_alias="LANTERN_BEDROCK_MODELS",
    )
    # Named OpenAI-compatible servers, e.g. {"ollama": {"base_url": "http://127.0.0.1:11434/v1"}}.
    compat_endpoints: dict[str, CompatEndpoint] = Field(
        default_factory=dict, validation_alias="LANTERN_OPENAI_COMPAT"
    )
    # Scripted provider scripts by model name (tests and demos), JSON.
    scripts: dict[str, Any] = Field(default_factory=dict, validation_alias="LANTERN_SCRIPTS")

    local_model_path: Path | None = Field(None, validation_alias="LANTERN_LOCAL_MODEL_PATH")
    local_context: int = Field(2048, validation_alias="LANTERN_LOCAL_CONTEXT")
    local_threads: int | None = Field(None, validation_alias="LANTERN_LOCAL_THREADS")

    duet_max_turns: int = Field(40, validation_alias="LANTERN_DUET_MAX_TURNS")
    duet_max_total_tokens: int = Field(40_000, validation_alias="LANTERN_DUET_MAX_TOKENS")

    # Studio's provider chain, tried in order on retryable failures, e.g. ["openai/gpt-4o-mini", "local/smollm2"].
    studio_chain: list[str] = Field(default_factory=list, validation_alias="LANTERN_STUDIO_CHAIN")
    # Named fallback chains, offered by /v1 as model `chain/<name>`: {"sturdy": ["openai/gpt-4o", "local/smollm2"]}.
    chains: dict[str, list[str]] = Field(default_factory=dict, validation_alias="LANTERN_CHAINS")
    # USD per million tokens, (input, output), by provider/model; merged over the built-in table.
    prices: dict[str, tuple[float, float]] = Field(default_factory=dict, validation_alias="LANTERN_PRICES")

    # Shared mode: login is required on any non-loopback host, or anywhere with LANTERN_REQUIRE_LOGIN=1.
    require_login: bool = Field(False, validation_alias="LANTERN_REQUIRE_LOGIN")
    session_hours: float = Field(12.0, gt=0, validation_alias="LANTERN_SESSION_HOURS")
    runs_per_minute: int = Field(10, ge=0, validation_alias="LANTERN_RUNS_PER_MINUTE")  # per user, shared mode
    login_attempts_per_minute: int = Field(5, ge=1, validation_alias="LANTERN_LOGIN_ATTEMPTS")
    max_run_tokens: int = Field(200_000, ge=0, validation_alias="LANTERN_MAX_RUN_TOKENS")  # 0: no cap
    root_path: str = Field("", validation_alias="LANTERN_ROOT_PATH")  # e.g. /lantern behind a reverse proxy
    cors_origins: list[str] = Field(default_factory=list, validation_alias="LANTERN_CORS_ORIGINS")
    # With login off only loopback names are answered (DNS rebinding); these host names are answered too.
    allowed_hosts: list[str] = Field(default_factory=list, validation_alias="LANTERN_ALLOWED_HOSTS")

    # MCP tool servers by name, JSON: {"files": {"command": "npx", "args": [...], "env": {...}}} (stdio) or
    # {"docs": {"url": "https://.../mcp", "headers": {...}}} (streamable HTTP); see services/tools/mcp_config.py.
    # Not in repr: env and header values are secrets.
    mcp_servers: dict[str, Any] = Field(default_factory=dict, repr=False, validation_alias="LANTERN_MCP_SERVERS")
    # A JSON file of the same shape (or Claude Desktop's {"mcpServers": {...}}); LANTERN_MCP_SERVERS wins on a name.
    mcp_file: Path | None = Field(None, validation_alias="LANTERN_MCP_FILE")
    # Read-only SQL data sources as tools: {"name": "sqlite:////path/file.db" | "postgresql://user:pw@host/db"};
    # the URLs hold passwords, so the field stays out of reprs.
    sql_sources: dict[str, str] = Field(default_factory=dict, repr=False, validation_alias="LANTERN_SQL_SOURCES")

    provider_timeout_s: float = Field(60.0, validation_alias="LANTERN_PROVIDER_TIMEOUT")
    max_prompt_chars: int = Field(200_000, validation_alias="LANTERN_MAX_PROMPT_CHARS")
    max_body_bytes: int = Field(1024 * 1024, ge=1024, validation_alias="LANTERN_MAX_BODY_BYTES")
    # Seconds a client may take to send its request headers, and to send each next piece of a body (slowloris).
    header_timeout: float = Field(10.0, gt=0, validation_alias="LANTERN_HEADER_TIMEOUT")
    body_timeout: float = Field(15.0, gt=0, validation_alias="LANTERN_BODY_TIMEOUT")

    @field_validator("root_path")
    @classmethod
    def _root_path(cls, value: str) -> str:
        """`/prefix` without a trailing slash, or empty."""
        value = value.strip().rstrip("/")
        return value if not value or value.startswith("/") else "/" + value

    @field_validator("compat_endpoints", "scripts", "prices", "mcp_servers", "sql_sources", mode="before")
    @classmethod
    def _parse_json(cls, value: Any) -> Any:
        """Accept JSON text from the environment."""
        return json.loads(value) if isinstance(value, str) and value.strip() else value or {}

    @property
    def shared(self) -> bool:
        """Whether accounts and login are enforced."""
        return self.require_login or not is_loopback(self.host)

    @property
    def resolved_database_url(self) -> str:
        """The configured database, or the SQLite file in the data directory."""
        return self.database_url or f"sqlite:///{self.data_dir / 'lantern.db'}"


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach the address."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
