"""The plate-history store interface and the records it keeps.

Two implementations sit behind :class:`HistoryStore`: PostgreSQL for a city
(:mod:`storage.plates.postgres`) and SQLite for one box
(:mod:`storage.plates.sqlite`). Search, the indexer and the CLI see only this
interface, so the same code answers on a laptop and in the operations centre.

Both stores keep, beside the reads, a *plate dictionary*: one row per distinct
plate with its first and last sighting. Wildcard and fuzzy search look plates
up there (trigram index) and then fetch the reads of the matching plates by
the (plate, time) index. A city sees the same vehicles every day, so the
dictionary is tens of times smaller than the reads; the trigram index lives on
it rather than on every read, which keeps ingest cheap and lets retention drop
read partitions without touching a giant GIN index.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from pydantic import ValidationError

from core.snapshot import SnapshotRef
from storage.plates.query import ValidQuery
from storage.plates.text import PlateTextError, is_plate, normalise_plate


class RecordError(ValueError):
    """A plate-read document that cannot be stored (the indexer sends it to the dead-letter topic)."""


class QueryTooBroad(ValueError):
    """A wildcard or fuzzy query expanded to more distinct plates than the configured cap."""


class StoreError(RuntimeError):
    """The database failed (connection lost, permission, schema missing); message has no credentials."""


@dataclass(frozen=True, slots=True)
class PlateReadRecord:
    """One plate read as the history keeps it (the fields of the PlateRead event an investigator needs)."""

    event_id: UUID
    observed_at: datetime
    camera_id: str
    plate: str
    confidence: float
    raw_text: str = ""
    country: str = ""
    plate_format: str = ""
    is_candidate: bool = False
    candidates: tuple[tuple[str, float], ...] = ()
    boxes: Mapping[str, Sequence[float]] = field(default_factory=dict)
    snapshot: SnapshotRef | None = None

    def candidates_json(self) -> str:
        return json.dumps([{"plate": p, "confidence": c} for p, c in self.candidates], separators=(",", ":"))

    def boxes_json(self) -> str:
        return json.dumps({k: list(v) for k, v in self.boxes.items()}, separators=(",", ":"))

    def snapshot_json(self) -> str | None:
        return self.snapshot.model_dump_json() if self.snapshot is not None else None

    def row(self) -> tuple[Any, ...]:
        """The values of :data:`RECORD_COLUMNS`, in order (each store converts the types its driver cannot bind)."""
        return (
            self.event_id,
            self.observed_at,
            self.camera_id,
            self.plate,
            self.raw_text,
            self.country,
            self.plate_format,
            self.confidence,
            self.is_candidate,
            self.candidates_json(),
            self.boxes_json(),
            self.snapshot_json(),
        )


RECORD_COLUMNS = (
    "event_id",
    "observed_at",
    "camera_id",
    "plate",
    "raw_text",
    "country",
    "plate_format",
    "confidence",
    "is_candidate",
    "candidates",
    "boxes",
    "snapshot",
)
"""The stored columns of a read, in the order of :meth:`PlateReadRecord.row` (SQLite names ``observed_at`` ``t``)."""


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One read returned by a search; ``distance`` is the weighted edit distance (0 for exact matches)."""

    event_id: UUID
    observed_at: datetime
    camera_id: str
    plate: str
    confidence: float
    is_candidate: bool
    raw_text: str
    distance: float = 0.0
    snapshot: SnapshotRef | None = None
    snapshot_url: str | None = None

    def with_url(self, url: str | None) -> SearchHit:
        return replace(self, snapshot_url=url)

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": str(self.event_id),
            "observed_at": self.observed_at.astimezone(UTC).isoformat(),
            "camera_id": self.camera_id,
            "plate": self.plate,
            "raw_text": self.raw_text,
            "confidence": round(self.confidence, 4),
            "is_candidate": self.is_candidate,
            "distance": self.distance,
            "snapshot_url": self.snapshot_url,
        }


def hit_from_row(row: Sequence[Any], observed_at: datetime) -> SearchHit:
    """A hit from a search row ``(event_id, time, camera, plate, confidence, is_candidate, raw_text, snapshot,
    distance)``; the store converts its own time column, and the snapshot may come as JSON text or as a dict."""
    event_id, _, camera_id, plate, confidence, is_candidate, raw_text, snapshot, distance = row
    if isinstance(snapshot, str):
        snapshot = json.loads(snapshot)
    return SearchHit(
        event_id=event_id if isinstance(event_id, UUID) else UUID(event_id),
        observed_at=observed_at,
        camera_id=camera_id,
        plate=plate,
        confidence=float(confidence),
        is_candidate=bool(is_candidate),
        raw_text=raw_text,
        distance=round(float(distance), 6),
        snapshot=SnapshotRef.model_validate(snapshot) if snapshot else None,
    )


def capped(plates: list[str], query: ValidQuery) -> list[str]:
    """The candidate plates of a wildcard or fuzzy query; QueryTooBroad past the query's cap (the stores ask
    for one more than the cap, so a full answer means "too many")."""
    if len(plates) > query.max_candidates:
        raise QueryTooBroad(
            f"{query.mode.value} query {query.plate!r} matches more than {query.max_candidates} distinct plates "
            "in that time range; give more characters, a shorter range or cameras"
        )
    return plates


@dataclass(frozen=True, slots=True)
class SearchPage:
    """Hits of one page, best first; ``has_more`` says whether the next offset would return anything."""

    hits: tuple[SearchHit, ...]
    has_more: bool
    candidates: int = 0  # distinct plates considered (wildcard / fuzzy), for diagnostics and the audit log


@dataclass(frozen=True, slots=True)
class RetentionReport:
    cutoff: datetime
    reads_deleted: int | None  # None where whole partitions were dropped without counting
    partitions_dropped: tuple[str, ...] = ()
    plates_forgotten: int = 0


class HistoryStore(Protocol):
    """What both history stores offer."""

    kind: str

    def migrate(self) -> None:
        """Create tables and indexes if missing (idempotent)."""
        ...

    def insert(self, reads: Sequence[PlateReadRecord]) -> int:
        """Store a batch in one transaction; reads already stored (same event id) are skipped. Returns new rows."""
        ...

    def find(self, query: ValidQuery) -> SearchPage:
        """Run a validated query: newest first (fuzzy: nearest plate first, then newest)."""
        ...

    def apply_retention(self, days: int, now: datetime) -> RetentionReport:
        """Remove reads older than ``days`` before ``now`` (and plates no longer seen)."""
        ...

    def ensure_partitions(self, now: datetime, days_ahead: int = 3) -> list[str]:
        """Create storage for the coming days ahead of time (PostgreSQL); returns what was created."""
        ...

    def count(self) -> int:
        """Number of stored reads (tests, the benchmark)."""
        ...

    def close(self) -> None: ...


def _time(value: Any, name: str) -> datetime:
    if isinstance(value, datetime):
        t = value
    elif isinstance(value, str):
        try:
            t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise RecordError(f"{name} is not an ISO-8601 time: {value[:40]!r}") from None
    else:
        raise RecordError(f"{name} is missing or not a time")
    if t.tzinfo is None:
        raise RecordError(f"{name} has no time zone")
    return t.astimezone(UTC)


def _box(value: Any) -> list[float] | None:
    if value is None:
        return None
    if not (isinstance(value, list | tuple) and len(value) == 4 and all(isinstance(v, int | float) for v in value)):
        raise RecordError("a box must be four numbers x1, y1, x2, y2")
    return [float(v) for v in value]


def record_from_document(doc: Mapping[str, Any]) -> PlateReadRecord:
    """A storable record from a PlateRead JSON document (already schema-checked by the consumer, or not).

    Reads :class:`event_bus.events.PlateRead` documents (``model_dump(mode="json")``) and tolerates a few
    older field spellings (``read_at``, ``format``, candidate ``confidence``). Strict about values: a
    record that would corrupt the index raises :class:`RecordError` and goes to the dead-letter topic.
    """
    if not isinstance(doc, Mapping):
        raise RecordError("a plate read must be a JSON object")
    try:
        event_id = UUID(str(doc["event_id"]))
    except (KeyError, ValueError):
        raise RecordError("event_id is missing or not a UUID") from None
    when = next((doc[k] for k in ("observed_at", "read_at", "at", "captured_at") if k in doc), None)
    observed_at = _time(when, "observed_at")
    camera_id = doc.get("camera_id")
    if not isinstance(camera_id, str) or not camera_id or len(camera_id) > 64:
        raise RecordError("camera_id is missing or invalid")
    try:
        plate = normalise_plate(str(doc.get("plate", "")))
    except PlateTextError as exc:
        raise RecordError(f"plate: {exc}") from None
    conf = doc.get("confidence")
    if not isinstance(conf, int | float) or not (0.0 <= float(conf) <= 1.0):
        raise RecordError("confidence must be a number in 0..1")
    candidates: list[tuple[str, float]] = []
    for c in doc.get("candidates") or ():
        if isinstance(c, Mapping):
            text, cc = c.get("plate", c.get("text")), c.get("score", c.get("confidence", 0.0))
        elif isinstance(c, list | tuple) and len(c) == 2:
            text, cc = c
        else:
            raise RecordError("candidates must be {plate, confidence} objects")
        if not isinstance(text, str) or not isinstance(cc, int | float):
            raise RecordError("candidate needs a plate text and a confidence")
        candidates.append((text[:32], float(cc)))
    boxes: dict[str, list[float]] = {}
    for name in ("vehicle_box", "plate_box"):
        b = _box(doc.get(name))
        if b is not None:
            boxes[name.removesuffix("_box")] = b
    if isinstance(doc.get("boxes"), Mapping):
        for name, value in doc["boxes"].items():
            b = _box(value)
            if b is not None:
                boxes[str(name)[:32]] = b
    snapshot = None
    if doc.get("snapshot") is not None:
        try:
            snapshot = SnapshotRef.model_validate(doc["snapshot"])
        except ValidationError:
            raise RecordError("snapshot reference is malformed") from None
    fmt = doc.get("format_id", doc.get("format", doc.get("plate_format", "")))
    return PlateReadRecord(
        event_id=event_id,
        observed_at=observed_at,
        camera_id=camera_id,
        plate=plate,
        confidence=float(conf),
        raw_text=str(doc.get("raw_text", ""))[:64],
        country=str(doc.get("country", ""))[:8],
        plate_format=str(fmt or "")[:32],
        is_candidate=bool(doc.get("is_candidate", False)),
        candidates=tuple(candidates[:10]),
        boxes=boxes,
        snapshot=snapshot,
    )


def check_record(r: PlateReadRecord) -> None:
    """Invariants every store relies on (the indexer builds records through :func:`record_from_document`)."""
    if not is_plate(r.plate):
        raise RecordError(f"plate {r.plate!r} is not normalised")
    if r.observed_at.tzinfo is None:
        raise RecordError("observed_at has no time zone")
