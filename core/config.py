"""Typed configuration: one YAML file plus ``KUZET_*`` environment variables.

Every model forbids unknown keys (a typo is an error, not a silently ignored
setting), every number has bounds, and every field says what it is for.
Secrets (stream credentials, S3 keys) are never written in the YAML: they are
references (``env:NAME`` or ``file:/path``) resolved when they are used, and
held as :class:`pydantic.SecretStr` so they do not print.

Why one module over 400 lines: the configuration is one typed tree (one file, one set of environment
names, one error format); splitting the models across files would split that tree without making any
part of it simpler.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from core.alerting import AlertPolicy
from core.analytics_config import AnalyticsConfig
from core.camera_policy import CameraPolicy
from core.labels import Label
from core.sim_url import SCHEME as SIM_SCHEME
from core.sim_url import is_sim_url, parse_sim_url
from core.yaml_file import read_yaml

CAMERA_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
SIMULATION_REFUSED = "sim:// cameras are simulated and refused unless ingest.simulation is true"
_SECRET_REF = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:/.+)$")


class ConfigError(ValueError):
    """A configuration that cannot be used, with a message meant for the operator."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def resolve_secret(ref: str) -> SecretStr:
    """Read a secret reference (``env:NAME`` or ``file:/path``); the value never passes through a log."""
    if not _SECRET_REF.match(ref):
        raise ConfigError(f"secret reference must be env:NAME or file:/path, got {ref!r}")
    kind, _, name = ref.partition(":")
    if kind == "env":
        value = os.environ.get(name)
        if value is None:
            raise ConfigError(f"secret {ref} is not set in the environment")
        return SecretStr(value)
    try:
        return SecretStr(Path(name).read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise ConfigError(f"secret file {name} cannot be read: {exc.strerror}") from None


class Zone(Strict):
    """A polygon in normalised frame coordinates (0..1), so zones survive a resolution change."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9 _.-]+$", description="shown to dispatchers")
    polygon: list[tuple[float, float]] = Field(min_length=3, max_length=64, description="vertices (x, y), 0..1")
    severity: Literal["low", "medium", "high", "critical"] = "medium"
    alerting: AlertPolicy | None = Field(
        default=None, description="schedule and per-rule review for this zone (default: rules.alerting)"
    )

    @field_validator("polygon")
    @classmethod
    def _inside_frame_and_simple(cls, pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
        from shapely.geometry import Polygon

        for x, y in pts:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"zone vertex ({x}, {y}) lies outside the frame (coordinates are 0..1)")
        poly = Polygon(pts)
        if not poly.is_valid or poly.area <= 0:
            raise ValueError("zone polygon must be simple (no self-crossing) with a non-zero area")
        return pts


class PrivacyMask(Strict):
    """A region no dispatcher may see (a window, a yard): burned into snapshots and into clips dispatchers get."""

    name: str = Field(default="mask", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9 _.-]+$")
    polygon: list[tuple[float, float]] = Field(min_length=3, max_length=64, description="vertices (x, y), 0..1")

    @field_validator("polygon")
    @classmethod
    def _like_a_zone(cls, pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
        Zone(name="mask", polygon=pts)  # same rules: inside the frame, simple, non-zero area
        return pts


class TilingConfig(Strict):
    """Full frame plus overlapping tiles for one camera and model: finds small people at one inference per tile."""

    rows: int = Field(default=2, ge=1, le=8)
    cols: int = Field(default=2, ge=1, le=8)
    overlap: float = Field(default=0.25, ge=0.0, lt=0.9, description="share of a tile its neighbour also covers")
    full_frame: bool = Field(default=True, description="also run the whole frame (people larger than a tile)")
    nms_iou: float = Field(default=0.5, gt=0.0, le=1.0, description="merging tile and full-frame boxes")


class CameraDetection(Strict):
    """Per-camera detection settings for one model, on top of the model's own."""

    tiling: TilingConfig | None = Field(default=None, description="tiled inference; unset: the full frame only")
    min_score: float = Field(default=0.0, ge=0.0, le=1.0, description="raises the model's score threshold")
    min_height_px: float = Field(default=0.0, ge=0.0, le=4096.0, description="drops shorter boxes (frame pixels)")


class CameraConfig(Strict):
    """One camera this worker analyses (on one box; at scale they come from the registry topic)."""

    id: str = Field(
        pattern=CAMERA_ID_PATTERN,
        description="stable id, 1-64 of a-z 0-9 _ - (starting with a letter or digit); the Kafka key of its events",
    )
    name: str = Field(default="", max_length=128)
    location: str = Field(default="", max_length=256)
    url: str = Field(description="rtsp://, rtsps:// or file path/URL; credentials go in `credentials`, never here")
    credentials: str | None = Field(
        default=None, description="secret reference (env:NAME or file:/path) holding 'user:password' for the stream"
    )
    analysis_fps: float = Field(default=5.0, gt=0.0, le=30.0, description="frames analysed per second")
    keyframe_only: Literal["auto", "always", "never"] = Field(
        default="auto", description="auto: decode key frames only when they are frequent enough for analysis_fps"
    )
    detectors: list[str] = Field(default_factory=lambda: ["person"], min_length=1, description="model names to run")
    zones: list[Zone] = Field(default_factory=list, max_length=32)
    privacy_masks: list[PrivacyMask] = Field(default_factory=list, max_length=32)
    analytics: AnalyticsConfig = Field(default_factory=AnalyticsConfig, description="lines, crowding, traffic rules")
    detection: dict[str, CameraDetection] = Field(
        default_factory=dict, description="model name -> this camera's tiling, threshold, minimum box size"
    )
    loop: bool = Field(default=False, description="replay a file source forever (demo, benchmarks)")
    realtime: bool = Field(default=True, description="pace a file source at its frame rate")
    enabled: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme in ("rtsp", "rtsps", "http", "https"):
            if not parts.hostname:
                raise ValueError("stream URL has no host")
            # any "@": user-info, even when a "/", "?" or "#" in the password hides it from urlsplit
            if parts.username or parts.password or "@" in url:
                raise ValueError("stream URL must not hold credentials; put a secret reference in `credentials`")
            return url
        if parts.scheme in ("", "file"):
            return url
        if parts.scheme == SIM_SCHEME:
            parse_sim_url(url)  # a simulated camera (core.sim_url); workers run it only with ingest.simulation
            return url
        raise ValueError(
            f"unsupported stream URL scheme {parts.scheme!r}: "
            "use rtsp, rtsps, http(s), a file path or sim:// (simulation)"
        )

    @field_validator("credentials")
    @classmethod
    def _cred_ref(cls, ref: str | None) -> str | None:
        if ref is not None and not _SECRET_REF.match(ref):
            raise ValueError("credentials must be a secret reference: env:NAME or file:/path")
        return ref

    @model_validator(mode="after")
    def _unique_zone_names(self) -> CameraConfig:
        names = [z.name for z in self.zones]
        if len(names) != len(set(names)):
            raise ValueError("zone names must be unique per camera")
        self.analytics.check_zones(set(names))
        unused = sorted(set(self.detection) - set(self.detectors))
        if unused:
            raise ValueError(f"detection settings for model(s) {unused} this camera does not run")
        return self


class ModelConfig(Strict):
    """A detector model and how to run it."""

    name: str = Field(pattern=r"^[a-z0-9_-]+$")
    manifest_id: str = Field(description="entry in the model manifest (detectors/manifest.yaml) this model comes from")
    backend: Literal["onnxruntime", "ultralytics"] = "onnxruntime"
    path: Path | None = Field(default=None, description="override: an operator's own model file")
    input_size: int = Field(default=300, ge=32, le=2048, description="square network input in pixels")
    score_threshold: float = Field(default=0.3, ge=0.0, le=1.0)
    nms_iou: float = Field(default=0.5, gt=0.0, le=1.0)
    labels: dict[str, str] = Field(
        default_factory=dict, description="model class name -> canonical label; classes not listed are dropped"
    )
    threads: int = Field(default=2, ge=1, le=64, description="intra-op threads for inference")
    device: str = Field(
        default="cpu",
        pattern=r"^(cpu|cuda(:[0-9]{1,2})?)$",
        description="cpu, cuda (GPU 0) or cuda:N; a CUDA device needs the gpu extra, and a worker without CUDA "
        "stops at start instead of running the model on the CPU",
    )

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for canonical in labels.values():
            Label.parse(canonical)
        return labels


class BatchConfig(Strict):
    max_batch: int = Field(default=8, ge=1, le=256, description="frames per inference call")
    max_wait_ms: float = Field(default=20.0, ge=0.0, le=1000.0, description="longest a frame waits for a batch to fill")


class TrackingConfig(Strict):
    track_activation_threshold: float = Field(default=0.3, ge=0.0, le=1.0)
    lost_track_buffer_s: float = Field(default=3.0, gt=0.0, le=60.0, description="how long a lost track may come back")
    minimum_matching_threshold: float = Field(default=0.8, gt=0.0, le=1.0)


class RulesConfig(Strict):
    loiter_seconds: float = Field(
        default=20.0, gt=0.0, le=3600.0, description="time in a zone that counts as loitering"
    )
    end_after_s: float = Field(
        default=3.0, gt=0.0, le=300.0, description="an incident ends when its object is gone this long"
    )
    update_every_s: float = Field(default=5.0, gt=0.0, le=600.0, description="min time between update events")
    cooldown_s: float = Field(
        default=30.0, ge=0.0, le=3600.0, description="no new incident of one kind/zone/track after an end"
    )
    fire_confirm_n: int = Field(default=3, ge=1, le=100, description="fire/smoke seen in N ...")
    fire_window_m: int = Field(default=5, ge=1, le=100, description="... of the last M analysed frames")
    fire_min_confidence: float = Field(default=0.35, ge=0.0, le=1.0)
    fire_min_flicker: float = Field(
        default=0.05, ge=0.0, le=2.0, description="flames' texture must keep changing (median over the window); 0: off"
    )
    fire_max_luma_swing: float = Field(
        default=0.35, gt=0.0, le=10.0, description="(max - min) / mean brightness in the box over the window"
    )
    fire_max_drift: float = Field(
        default=0.3, gt=0.0, le=100.0, description="how far (in box heights) any box edge may travel over the window"
    )
    alerting: AlertPolicy = Field(
        default_factory=AlertPolicy, description="default schedule and per-rule review for every zone (core.alerting)"
    )
    alert_budget_per_min: int = Field(
        default=0, ge=0, le=100_000, description="alerts per camera per minute before one 'flooding' alert; 0: off"
    )

    @model_validator(mode="after")
    def _n_le_m(self) -> RulesConfig:
        if self.fire_confirm_n > self.fire_window_m:
            raise ValueError("fire_confirm_n must not exceed fire_window_m")
        return self


class PlatesConfig(Strict):
    """Plate reading (plate_reader): OCR backend and how a vehicle pass is voted into one read."""

    ocr_backend: Literal["rapidocr", "easyocr"] = Field(default="rapidocr", description="easyocr needs the ocr extra")
    candidate_below: float = Field(default=0.6, ge=0.0, le=1.0, description="reads under this are candidates")
    min_read_confidence: float = Field(
        default=0.3, ge=0.0, le=1.0, description="per-frame reads under this are ignored"
    )
    end_after_s: float = Field(
        default=1.5, gt=0.0, le=60.0, description="a pass ends when its plate is unseen this long"
    )


class IngestConfig(Strict):
    open_timeout_s: float = Field(default=5.0, gt=0.0, le=120.0)
    stall_timeout_s: float = Field(default=5.0, gt=0.0, le=120.0, description="open connection without frames -> down")
    backoff_initial_s: float = Field(default=0.5, gt=0.0, le=60.0)
    backoff_max_s: float = Field(default=30.0, gt=0.0, le=600.0)
    degraded_ratio: float = Field(
        default=0.5, gt=0.0, le=1.0, description="analysed/expected fps below this -> degraded"
    )
    simulation: bool = Field(
        default=False, description="run sim:// cameras (no video; control-plane simulation): never in production"
    )


class KafkaConfig(Strict):
    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "kuzet"
    compression: Literal["lz4", "gzip", "zstd", "none"] = "lz4"
    linger_ms: int = Field(default=5, ge=0, le=1000)
    delivery_timeout_s: float = Field(default=30.0, gt=0.0, le=600.0)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="SASL_SSL (SCRAM over TLS) in production; PLAINTEXT on one box or in tests"
    )
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    sasl_username: str = Field(default="", max_length=256, description="this service's Kafka principal (SCRAM user)")
    sasl_password: str | None = Field(default=None, description="secret reference (env:NAME or file:/path)")
    ssl_cafile: Path | None = Field(default=None, description="PEM file of the CA that signed the broker certificate")

    @model_validator(mode="after")
    def _sasl_complete(self) -> KafkaConfig:
        if self.security_protocol == "SASL_SSL" and not (self.sasl_username and self.sasl_password):
            raise ValueError("security_protocol SASL_SSL needs sasl_username and sasl_password (a secret reference)")
        if self.sasl_password is not None and not _SECRET_REF.match(self.sasl_password):
            raise ValueError("sasl_password must be a secret reference: env:NAME or file:/path")
        return self


class BusConfig(Strict):
    kind: Literal["local", "kafka"] = "local"
    kafka: KafkaConfig = KafkaConfig()
    local_path: Path = Field(default=Path("var/bus.sqlite3"), description="embedded bus log (one box)")
    spool_path: Path = Field(default=Path("var/spool.sqlite3"), description="durable outbox; survives restarts")


class S3Config(Strict):
    endpoint: str = "127.0.0.1:8333"
    secure: bool = False
    region: str = "us-east-1"
    bucket: str = Field(default="kuzet-snapshots", pattern=r"^[a-z0-9][a-z0-9.-]{2,62}$")
    access_key: str = Field(default="env:KUZET_S3_ACCESS_KEY", description="secret reference")
    secret_key: str = Field(default="env:KUZET_S3_SECRET_KEY", description="secret reference")


class StorageConfig(Strict):
    kind: Literal["local", "s3"] = "local"
    local_dir: Path = Path("var/snapshots")
    s3: S3Config = S3Config()


class EvidenceConfig(Strict):
    """Clips around incidents (pre-roll ring buffer of compressed packets, remuxed to MP4) and their retention."""

    clips: bool = Field(default=True, description="record a clip for every incident")
    pre_roll_s: float = Field(default=10.0, ge=0.0, le=120.0, description="seconds kept before an incident starts")
    post_roll_s: float = Field(default=10.0, ge=0.0, le=300.0, description="seconds recorded after it ends")
    max_clip_s: float = Field(default=120.0, gt=0.0, le=3600.0, description="a clip is cut (and marked) after this")
    ring_max_bytes: int = Field(
        default=16 * 1024 * 1024, ge=64 * 1024, le=1024**3, description="memory bound of one camera's ring buffer"
    )
    retention_days: int = Field(default=30, ge=1, le=3650, description="S3 lifecycle expiry of snapshots and clips")
    live_host: str = Field(
        default="127.0.0.1", description="address of the live-view endpoint (private: the console proxies)"
    )
    live_port: int | None = Field(default=None, ge=0, le=65535, description="live-view port; none: no live view")


class WorkerConfig(Strict):
    id: str = Field(default="worker-1", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    data_dir: Path = Path("var")
    status_interval_s: float = Field(
        default=30.0,
        ge=0.2,
        le=3600.0,
        description="camera status heartbeat period; the console marks a camera stale after two missed heartbeats",
    )


def _default_models() -> list[ModelConfig]:
    return [
        ModelConfig(
            name="person",
            manifest_id="ssdlite-person",
            input_size=300,
            score_threshold=0.3,
            labels={"person": "person"},
        ),
        ModelConfig(
            name="fire",
            manifest_id="yolov8-fire-smoke",
            input_size=640,
            score_threshold=0.35,
            labels={"fire": "fire", "smoke": "smoke"},
        ),
        ModelConfig(
            name="plate",
            manifest_id="yolov8n-license-plate",
            input_size=640,
            score_threshold=0.25,
            labels={"license_plate": "license_plate"},
        ),
    ]


def default_model_cache() -> Path:
    """``$KUZET_CACHE_DIR/models`` when set (the one cache root the service launchers use too), else ~/.cache."""
    root = os.environ.get("KUZET_CACHE_DIR")
    return Path(root) / "models" if root else Path("~/.cache/kuzet/models")


class KuzetConfig(BaseSettings):
    """The whole configuration of one Kuzet process."""

    model_config = SettingsConfigDict(env_prefix="KUZET_", env_nested_delimiter="__", extra="forbid", frozen=True)

    worker: WorkerConfig = WorkerConfig()
    cameras: list[CameraConfig] = Field(default_factory=list, max_length=4096)
    models: list[ModelConfig] = Field(default_factory=_default_models, min_length=1)
    model_cache: Path = Field(
        default_factory=default_model_cache,
        description="where `kuzet models build` writes (default $KUZET_CACHE_DIR/models, else ~/.cache/kuzet/models)",
    )
    batch: BatchConfig = BatchConfig()
    tracking: TrackingConfig = TrackingConfig()
    rules: RulesConfig = RulesConfig()
    plates: PlatesConfig = PlatesConfig()
    ingest: IngestConfig = IngestConfig()
    bus: BusConfig = BusConfig()
    storage: StorageConfig = StorageConfig()
    evidence: EvidenceConfig = EvidenceConfig()
    camera_policy: CameraPolicy = Field(
        default_factory=CameraPolicy, description="secret references and hosts cameras may name (allow-lists)"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @model_validator(mode="after")
    def _references(self) -> KuzetConfig:
        ids = [c.id for c in self.cameras]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate camera ids: {', '.join(dupes)}")
        names = {m.name for m in self.models}
        if len(names) != len(self.models):
            raise ValueError("model names must be unique")
        for cam in self.cameras:
            if is_sim_url(cam.url) and not self.ingest.simulation:
                raise ValueError(f"camera {cam.id}: {SIMULATION_REFUSED}")
            missing = [d for d in cam.detectors if d not in names]
            if missing:
                raise ValueError(f"camera {cam.id} uses unknown detector(s) {missing}; configured: {sorted(names)}")
            self.camera_policy.check(cam)  # CameraPolicyError is a ValueError: reported like any other problem
            labels = {Label.parse(v) for d in cam.detectors for v in self.model(d).labels.values()}
            cam.analytics.check_detectors(labels, cam.id)
        return self

    def model(self, name: str) -> ModelConfig:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the YAML file (passed as init kwargs), as operators expect.
        return env_settings, init_settings


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> KuzetConfig:
    """Load YAML (if given) plus environment; every problem becomes one readable ConfigError."""
    data = read_config_file(path)
    if overrides:
        data = {**data, **overrides}
    try:
        return KuzetConfig(**data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path) if path else "config")) from None


def read_config_file(path: Path | None) -> dict[str, Any]:
    """The YAML mapping of a config file (empty without a file); unreadable or non-mapping YAML is a ConfigError."""
    data: dict[str, Any] = {}
    if path is not None:
        loaded = read_yaml(path, "config file", ConfigError)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        data = loaded
    return data


def format_validation_error(exc: ValidationError, where: str) -> str:
    lines = [f"{where}: {exc.error_count()} problem(s)"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not a Kuzet setting)"
        elif err["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
        lines.append(f"  - {loc}: {msg}")
    return "\n".join(lines)
