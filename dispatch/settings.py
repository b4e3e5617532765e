"""Console settings: where the workflow database, the bus and the snapshots are, and the web limits.

Separate from :class:`core.config.KuzetConfig` (the worker's configuration)
because the console is a different process with different secrets; it reuses
the bus and storage sections so one YAML describes both sides of the bus.
Every field is bounded, unknown keys are errors, and environment variables
``KUZET_CONSOLE_*`` override the file.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.config import BusConfig, StorageConfig


class ConsoleSettings(BaseSettings):
    """Settings of one console server."""

    model_config = SettingsConfigDict(env_prefix="KUZET_CONSOLE_", env_nested_delimiter="__", extra="forbid")

    database: str = Field(
        default="var/console.sqlite3",
        description="workflow/users database: a SQLite path, or a postgresql:// URL (password via PGPASSWORD/.pgpass)",
    )
    plates_database: str | None = Field(
        default=None,
        description="plate history / audit / watchlist database (storage.plates); default: the same as `database`",
    )
    bus: BusConfig = BusConfig()
    storage: StorageConfig = StorageConfig()
    consumer_group: str = Field(
        default="kuzet-console",
        pattern=r"^[A-Za-z0-9_.-]{1,100}$",
        description="the console's own consumer group on kuzet.incidents.v1 and kuzet.camera-status.v1",
    )
    consume: bool = Field(default=True, description="read the bus (off: serve the database only, e.g. in tests)")
    from_beginning: bool = Field(default=True, description="a new consumer group starts at the oldest record")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    cookie_secure: bool = Field(default=False, description="set the Secure flag on cookies (true behind HTTPS)")
    session_ttl_s: int = Field(default=12 * 3600, ge=60, le=7 * 24 * 3600)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=10 * 1024 * 1024)
    replay_limit: int = Field(
        default=5000, ge=10, le=100_000, description="most changed incidents replayed to a reconnecting browser"
    )
    heartbeat_s: float = Field(default=2.0, gt=0.0, le=60.0, description="SSE ping period (browsers detect loss)")
    max_cards: int = Field(default=150, ge=10, le=2000, description="incident cards kept in a browser's feed")
    camera_groups: dict[str, list[str]] = Field(
        default_factory=dict, description="group name -> camera id glob patterns (e.g. {'north': ['n-*']})"
    )
    login_attempts: int = Field(default=5, ge=1, le=100, description="failed logins per user per window")
    login_window_s: int = Field(default=300, ge=10, le=86400)

    @field_validator("camera_groups")
    @classmethod
    def _groups(cls, groups: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, patterns in groups.items():
            if not name or len(name) > 64 or not patterns:
                raise ValueError(f"camera group {name!r}: a name (1-64 characters) and at least one pattern")
        return groups

    def database_path(self) -> Path | None:
        return None if self.database.startswith(("postgresql://", "postgres://")) else Path(self.database)
