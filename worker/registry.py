"""The camera registry: ``kuzet.cameras.v1``, a compacted topic keyed by camera id.

Why a compacted Kafka topic and not a database: the workers already share a
broker, a compacted topic keeps exactly the latest record per camera forever,
and the consumer group that assigns its partitions to workers (see
:mod:`worker.assignment`) gives failover and scale-out with no scheduler of our
own. A camera lives on the partition its id hashes to (the producer's default
murmur2 partitioner), so every record of one camera, and its tombstone, land on
one partition, in order.

Record value (JSON, ``schema_version`` 1)::

    {"schema_version": 1, "camera": {<core.config.CameraConfig>}, "updated_at": "...", "updated_by": "..."}

The camera part *is* :class:`core.config.CameraConfig`, so the registry enforces
exactly the rules a YAML config does: id pattern, URL scheme, no credentials in
the URL (a secret reference in ``credentials`` instead), fps bounds, zones inside
the frame. A ``None`` value (tombstone) removes the camera.

Nothing here ever prints a URL without :func:`core.redact.redact_text`, and
validation messages never echo the offending value (a URL with inline
credentials is refused without repeating it).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from core.camera_policy import CameraPolicy, CameraPolicyError, policy_from_env
from core.config import CAMERA_ID_PATTERN, CameraConfig
from core.redact import redact_text
from event_bus import topics
from event_bus.kafka_admin import (
    AckedWriter,
    KafkaAdminError,
    ensure_topics,
    partition_for_key,
    read_to_end,
)
from event_bus.kafka_security import env_settings

log = logging.getLogger(__name__)

REGISTRY_PARTITIONS = 64
"""Partitions of the registry topic: the most workers one group can use, and the balance granularity."""

RECORD_SCHEMA_VERSION = 1
_CAMERA_ID = re.compile(CAMERA_ID_PATTERN)


class RegistryError(RuntimeError):
    """The registry could not be read or written (broker unreachable, write not acknowledged)."""


class InvalidCameraRecord(ValueError):
    """A camera definition or a registry record that must not be used; the message is for operators."""


class CameraRecord(BaseModel):
    """One registry record: a validated camera plus who changed it when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    camera: CameraConfig
    updated_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    updated_by: str = Field(default="", max_length=128)

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode("utf-8")


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """A decoded record: ``camera`` is None for a tombstone."""

    camera_id: str
    camera: CameraConfig | None
    partition: int = -1
    offset: int = -1


def describe_validation_error(exc: ValidationError, where: str = "camera") -> str:
    """One readable line per problem, without echoing input values (they may hold credentials)."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if p != "camera") or "(record)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "string_pattern_mismatch" and loc == "id":
            msg = "camera id must be 1-64 characters of a-z, 0-9, '_' or '-', starting with a letter or digit"
        parts.append(f"{loc}: {msg}")
    return f"{where}: " + "; ".join(parts)


def validate_camera(data: Mapping[str, Any], where: str = "camera", policy: CameraPolicy | None = None) -> CameraConfig:
    """Build a :class:`CameraConfig` from user input, raising :class:`InvalidCameraRecord` with a clear message.

    The camera must also pass the operator's allow-lists (``policy``; by default the one the environment
    sets, as the workers read it), so the CLI refuses what every worker would refuse.
    """
    try:
        camera = CameraConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise InvalidCameraRecord(redact_text(describe_validation_error(exc, where))) from None
    _check_policy(camera, policy)
    return camera


def _check_policy(camera: CameraConfig, policy: CameraPolicy | None) -> None:
    try:
        (policy if policy is not None else policy_from_env()).check(camera)
    except CameraPolicyError as exc:
        raise InvalidCameraRecord(str(exc)) from None


def encode_camera(camera: CameraConfig, updated_by: str = "") -> bytes:
    return CameraRecord(camera=camera, updated_by=updated_by[:128]).to_bytes()


def decode_record(key: bytes | str | None, value: bytes | None, policy: CameraPolicy | None = None) -> RegistryEntry:
    """Decode one registry record; raises :class:`InvalidCameraRecord` saying why it cannot be used.

    Whatever the bytes are (nested past the recursion limit, not UTF-8, huge), the answer is an entry or
    an :class:`InvalidCameraRecord`, never another exception: a worker must skip a poison record, not
    stop following the registry. The camera must pass ``policy`` (default: the environment's).
    """
    try:
        return _decode_record(key, value, policy)
    except InvalidCameraRecord:
        raise
    except RecursionError:
        raise InvalidCameraRecord("record is nested too deeply to decode") from None
    except Exception as exc:
        raise InvalidCameraRecord(f"record cannot be decoded ({type(exc).__name__})") from None


def _decode_record(key: bytes | str | None, value: bytes | None, policy: CameraPolicy | None) -> RegistryEntry:
    if key is None:
        raise InvalidCameraRecord("record has no key (the key must be the camera id)")
    camera_id = key.decode("utf-8", errors="replace") if isinstance(key, bytes) else key
    _check_id(camera_id)
    if value is None:
        return RegistryEntry(camera_id, None)
    try:
        doc = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidCameraRecord(f"camera {camera_id}: record is not JSON ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise InvalidCameraRecord(f"camera {camera_id}: record must be a JSON object")
    try:
        record = CameraRecord.model_validate(doc)
    except ValidationError as exc:
        raise InvalidCameraRecord(redact_text(describe_validation_error(exc, f"camera {camera_id}"))) from None
    if record.camera.id != camera_id:
        raise InvalidCameraRecord(f"camera {camera_id}: record holds camera id {record.camera.id!r}, not its key")
    _check_policy(record.camera, policy)
    return RegistryEntry(camera_id, record.camera)


def _check_id(camera_id: str) -> None:
    if not _CAMERA_ID.match(camera_id):
        shown = camera_id if len(camera_id) <= 80 else camera_id[:80] + "..."
        raise InvalidCameraRecord(
            f"bad camera id {redact_text(shown)!r}: 1-64 characters of a-z, 0-9, '_' or '-', "
            "starting with a letter or digit"
        )


# -- files ---------------------------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "id",
    "url",
    "credentials",
    "analysis_fps",
    "detectors",
    "zones",
    "name",
    "location",
    "keyframe_only",
    "enabled",
    "analytics",
)


def _csv_row(row: Mapping[str, str | None], line: int) -> dict[str, Any]:
    data: dict[str, Any] = {}
    unknown = sorted(k for k in row if k is not None and k not in CSV_COLUMNS)
    if unknown:
        raise InvalidCameraRecord(f"line {line}: unknown column(s) {unknown}; known: {list(CSV_COLUMNS)}")
    for key, raw in row.items():
        if key is None or raw is None or raw.strip() == "":
            continue
        val = raw.strip()
        if key == "analysis_fps":
            try:
                data[key] = float(val)
            except ValueError:
                raise InvalidCameraRecord(f"line {line}: analysis_fps {val!r} is not a number") from None
        elif key == "detectors":
            data[key] = [d.strip() for d in val.replace(";", ",").split(",") if d.strip()]
        elif key in ("zones", "analytics"):
            try:
                data[key] = json.loads(val)
            except json.JSONDecodeError:
                what = "a list of zones" if key == "zones" else "an object of lines, crowding, ... rules"
                raise InvalidCameraRecord(f"line {line}: {key} must be JSON ({what})") from None
        elif key == "enabled":
            data[key] = val.lower() in ("1", "true", "yes", "on")
        else:
            data[key] = val
    return data


def load_camera_file(path: Path) -> list[CameraConfig]:
    """Read cameras from a CSV or YAML file, all validated; every problem is reported at once.

    YAML: a list of camera mappings, or a mapping with a ``cameras`` list (the
    shape of the worker configuration). CSV: a header row with the columns of
    :data:`CSV_COLUMNS` (``detectors`` comma- or semicolon-separated, ``zones``
    and ``analytics`` as JSON). Duplicate ids inside the file are an error.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidCameraRecord(f"{path}: {exc.strerror}") from None
    items: list[tuple[str, dict[str, Any]]] = []
    if Path(path).suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None:
            raise InvalidCameraRecord(f"{path}: empty CSV file")
        for i, row in enumerate(reader, start=2):
            items.append((f"line {i}", _csv_row(row, i)))
    else:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidCameraRecord(f"{path}: not valid YAML: {exc}") from None
        if isinstance(doc, dict) and "cameras" in doc:
            doc = doc["cameras"]
        if not isinstance(doc, list):
            raise InvalidCameraRecord(f"{path}: expected a list of cameras (or a mapping with a 'cameras' list)")
        for i, entry in enumerate(doc):
            if not isinstance(entry, dict):
                raise InvalidCameraRecord(f"{path}: entry {i + 1} is not a mapping")
            items.append((f"entry {i + 1}", entry))
    problems: list[str] = []
    cameras: list[CameraConfig] = []
    seen: dict[str, str] = {}
    for where, data in items:
        label = f"{where} ({data.get('id')})" if isinstance(data.get("id"), str) else where
        try:
            cam = validate_camera(data, label)
        except InvalidCameraRecord as exc:
            problems.append(str(exc))
            continue
        if cam.id in seen:
            problems.append(f"{where}: duplicate camera id {cam.id!r} (first at {seen[cam.id]})")
            continue
        seen[cam.id] = where
        cameras.append(cam)
    if problems:
        raise InvalidCameraRecord(f"{path}: {len(problems)} problem(s)\n" + "\n".join(f"  - {p}" for p in problems))
    return cameras


# -- Kafka client --------------------------------------------------------------------------------------------------


@dataclass
class RegistrySnapshot:
    """The whole registry as read from the topic: the latest valid record per camera, and the bad ones."""

    cameras: dict[str, RegistryEntry] = field(default_factory=dict)
    invalid: list[tuple[int, int, str]] = field(default_factory=list)  # (partition, offset, reason)
    records_read: int = 0


def partition_for(camera_id: str, partitions: int = REGISTRY_PARTITIONS) -> int:
    """The partition the producer's default partitioner puts ``camera_id`` on (murmur2, as the Java client)."""
    return partition_for_key(camera_id.encode("utf-8"), partitions)


class CameraRegistry:
    """Produce, tombstone and list camera records on ``kuzet.cameras.v1``.

    Every write waits for the broker's acknowledgement (``acks=all``,
    idempotent producer): a CLI that says "added" must mean it.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        client_id: str = "kuzet-registry",
        timeout_s: float = 15.0,
        security: dict[str, Any] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        # Only the admin principal may write kuzet.cameras.v1 (event_bus.acls); default: this process's login.
        self.security = env_settings() if security is None else security
        self.client_id = client_id
        self.timeout_s = timeout_s
        self._writer = AckedWriter(bootstrap, client_id=client_id, timeout_s=timeout_s, security=self.security)

    def ensure_topic(self, partitions: int = REGISTRY_PARTITIONS) -> list[str]:
        """Create the registry topic (compacted) and the DLQ / status topics if missing.

        The partition count is no cap on workers (cameras are assigned one by one, :mod:`worker.assignment`);
        it only spreads the registry's reads and writes.
        """
        try:
            created = ensure_topics(self.bootstrap, [topics.CAMERAS], partitions=partitions, security=self.security)
            created += ensure_topics(self.bootstrap, [topics.CAMERA_STATUS, topics.DLQ], security=self.security)
        except KafkaAdminError as exc:
            raise RegistryError(str(exc)) from None
        return created

    def _send(self, items: Sequence[tuple[str, bytes | None]]) -> None:
        try:
            self._writer.write(topics.CAMERAS, items)
        except KafkaAdminError as exc:
            raise RegistryError(f"camera registry: {exc}") from None

    def put(self, cameras: Iterable[CameraConfig], updated_by: str = "") -> int:
        """Write (create or replace) cameras; returns how many."""
        items = [(c.id, encode_camera(c, updated_by)) for c in cameras]
        if items:
            self._send(items)
        return len(items)

    def remove(self, camera_ids: Iterable[str]) -> int:
        """Tombstone cameras (compaction then drops their records)."""
        items: list[tuple[str, bytes | None]] = []
        for cid in camera_ids:
            _check_id(cid)
            items.append((cid, None))
        if items:
            self._send(items)
        return len(items)

    def put_raw(self, camera_id: str, value: bytes | None) -> None:
        """Write an arbitrary record (tests and repair tools only: bypasses validation)."""
        self._send([(camera_id, value)])

    def snapshot(self, timeout_s: float | None = None) -> RegistrySnapshot:
        """Read the whole topic from its beginning up to its current end (no consumer group, nothing committed)."""
        snap = RegistrySnapshot()
        records = read_to_end(
            self.bootstrap,
            topics.CAMERAS,
            timeout_s=timeout_s or self.timeout_s,
            client_id=f"{self.client_id}-reader",
            security=self.security,
        )
        try:
            for r in records:
                snap.records_read += 1
                try:
                    entry = decode_record(r.key, r.value)
                except InvalidCameraRecord as exc:
                    snap.invalid.append((r.partition, r.offset, str(exc)))
                    continue
                if entry.camera is None:
                    snap.cameras.pop(entry.camera_id, None)
                else:
                    snap.cameras[entry.camera_id] = RegistryEntry(entry.camera_id, entry.camera, r.partition, r.offset)
        except KafkaAdminError as exc:
            raise RegistryError(f"cannot read the camera registry: {exc}") from None
        return snap

    def close(self) -> None:
        self._writer.close()
