"""Console settings: where the workflow database, the bus and the snapshots are, and the web limits.

Separate from :class:`core.config.KuzetConfig` (the worker's configuration)
because the console is a different process with different secrets; it reuses
the bus and storage sections so one YAML describes both sides of the bus.
Every field is bounded, unknown keys are errors, and environment variables
``KUZET_CONSOLE_*`` override the file.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from pydantic import AliasChoices, AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.config import BusConfig, StorageConfig


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1): the only places plain HTTP may serve."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_database() -> str:
    """One fixed place per user, not the current folder: `kuzet console users add` run from another directory
    must reach the same database as `kuzet console serve` (``$KUZET_DATA_DIR``, else the XDG data home)."""
    root = os.environ.get("KUZET_DATA_DIR")
    if root:
        return str(Path(root).expanduser() / "console.sqlite3")
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(data_home) / "kuzet" / "console.sqlite3")


class AuditAnchorSettings(BaseModel):
    """Where the head of the audit chain is anchored outside the database (see storage/audit_anchors.py)."""

    model_config = ConfigDict(extra="forbid")

    log: bool = Field(default=True, description="write each anchor to the log")
    dir: Path | None = Field(default=None, description="a directory for anchor files (one box; another disk)")
    s3_bucket: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9.-]{2,62}$",
        description="a bucket of its own on the storage.s3 service (object lock where supported)",
    )
    every_records: int = Field(default=100, ge=1, le=1_000_000)
    every_s: float = Field(default=300.0, gt=0.0, le=86400.0)


class ConsoleSettings(BaseSettings):
    """Settings of one console server.

    Environment: ``KUZET_CONSOLE_*`` for every field; the database also as ``KUZET_CONSOLE_DB`` and the bus
    and storage sections also as ``KUZET_BUS__*`` / ``KUZET_STORAGE__*`` (the names the worker reads), so one
    set of variables in a deploy file describes both sides of the bus.
    """

    model_config = SettingsConfigDict(
        env_prefix="KUZET_CONSOLE_", env_nested_delimiter="__", extra="forbid", populate_by_name=True
    )

    database: str = Field(
        default_factory=default_database,
        validation_alias=AliasChoices("database", "KUZET_CONSOLE_DB", "KUZET_CONSOLE_DATABASE"),
        description="workflow/users database: a SQLite path, or a postgresql:// URL (password via PGPASSWORD/.pgpass);"
        " default $KUZET_DATA_DIR/console.sqlite3, else ~/.local/share/kuzet/console.sqlite3",
    )
    plates_database: str | None = Field(
        default=None,
        description="plate history / audit / watchlist database (storage.plates); default: the same as `database`",
    )
    bus: BusConfig = Field(default=BusConfig(), validation_alias=AliasChoices("bus", "KUZET_CONSOLE_BUS", "KUZET_BUS"))
    storage: StorageConfig = Field(
        default=StorageConfig(), validation_alias=AliasChoices("storage", "KUZET_CONSOLE_STORAGE", "KUZET_STORAGE")
    )
    audit_anchors: AuditAnchorSettings = AuditAnchorSettings()
    live_workers: dict[str, AnyHttpUrl] = Field(
        default_factory=dict,
        description=(
            "worker id -> base URL of its live-view endpoint (evidence.live_port). The console streams a camera's "
            "live view only from the URL configured here for the worker its status names, never from a request"
        ),
    )
    link_key: str | None = Field(
        default=None,
        pattern=r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:/.+)$",
        description=(
            "secret reference (env:NAME or file:/path) to the key that signs snapshot links; every replica needs "
            "the same. Unset: a random key per process, which only one replica can use"
        ),
    )
    consumer_group: str = Field(
        default="kuzet-console",
        pattern=r"^[A-Za-z0-9_.-]{1,100}$",
        description="the console's own consumer group on kuzet.incidents.v1 and kuzet.camera-status.v1",
    )
    consume: bool = Field(default=True, description="read the bus (off: serve the database only, e.g. in tests)")
    from_beginning: bool = Field(default=True, description="a new consumer group starts at the oldest record")
    line_counts_lookback_s: float = Field(
        default=180.0,
        ge=10.0,
        le=86400.0,
        description="on start, the camera board's line counts are rebuilt from kuzet.line-counts.v1 records this"
        " recent: more than the workers' analytics.count_period_s, so every camera's last period is found",
    )
    line_counts_max_cameras: int = Field(
        default=100_000, ge=1, le=1_000_000, description="cameras whose latest line counts the console keeps"
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    cookie_secure: bool = Field(
        default=True,
        description="Secure cookies and HSTS (browsers use HTTPS); false is allowed on loopback only",
    )
    session_ttl_s: int = Field(default=12 * 3600, ge=60, le=7 * 24 * 3600)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=10 * 1024 * 1024)
    replay_limit: int = Field(
        default=5000, ge=10, le=100_000, description="most changed incidents replayed to a reconnecting browser"
    )
    heartbeat_s: float = Field(default=2.0, gt=0.0, le=60.0, description="SSE ping period (browsers detect loss)")
    session_recheck_s: float = Field(
        default=5.0, gt=0.0, le=60.0, description="an open SSE stream re-checks its session this often"
    )
    camera_stale_after_s: float = Field(
        default=60.0,
        gt=0.0,
        le=86400.0,
        description="a camera with no status this long is shown stale: twice the workers' worker.status_interval_s",
    )
    max_cards: int = Field(default=150, ge=10, le=2000, description="incident cards kept in a browser's feed")
    feed_group_window_s: float = Field(
        default=300.0,
        ge=0.0,
        le=86400.0,
        description="alerts of one camera, type and zone starting within this of each other share a feed card",
    )
    camera_groups: dict[str, list[str]] = Field(
        default_factory=dict, description="group name -> camera id glob patterns (e.g. {'north': ['n-*']})"
    )
    login_attempts: int = Field(
        default=5, ge=1, le=100, description="failed logins per user name and client address per window"
    )
    login_address_attempts: int = Field(
        default=20, ge=1, le=10_000, description="failed logins per client address per window, across user names"
    )
    login_window_s: int = Field(default=300, ge=10, le=86400)
    login_memory_mib: int = Field(
        default=256,
        ge=1,
        le=65536,
        description="memory concurrent password checks may use (Argon2 needs its memory_cost each): sizes a semaphore",
    )
    login_wait_s: float = Field(default=10.0, gt=0.0, le=120.0, description="longest wait for a password-check slot")

    @field_validator("camera_groups")
    @classmethod
    def _groups(cls, groups: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, patterns in groups.items():
            if not name or len(name) > 64 or not patterns:
                raise ValueError(f"camera group {name!r}: a name (1-64 characters) and at least one pattern")
        return groups

    @model_validator(mode="after")
    def _plain_http_only_on_loopback(self) -> ConsoleSettings:
        if not self.cookie_secure and not is_loopback(self.host):
            raise ValueError(
                "cookie_secure: false serves sessions over plain HTTP; allowed only on a loopback host, "
                f"not {self.host!r}"
            )
        return self

    def database_path(self) -> Path | None:
        return None if self.database.startswith(("postgresql://", "postgres://")) else Path(self.database)
