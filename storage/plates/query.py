"""What an investigator may ask the plate history, validated and bounded before any SQL runs.

Every bound here exists so that one careless or hostile query cannot make the
database scan a month of 170-million-reads-a-day partitions: wildcard
patterns need enough literal characters for the trigram index to narrow them,
time ranges have a maximum, pages have a cap. Errors say which bound was hit
and what to change, because the person reading them is an investigator, not a
DBA.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from core.config import CAMERA_ID_PATTERN
from storage.plates.text import PLATE_MAX_LEN, PlateTextError, fold, normalise, normalise_plate

_CAMERA_RE = re.compile(CAMERA_ID_PATTERN)


class QueryError(ValueError):
    """A search that cannot run as asked; the message says which bound was hit and how to fix the query."""


class SearchMode(StrEnum):
    EXACT = "exact"
    WILDCARD = "wildcard"
    FUZZY = "fuzzy"


@dataclass(frozen=True, slots=True)
class SearchLimits:
    """Bounds on the work one search may cause (operators may tune them; the defaults suit 10^8 reads/day)."""

    max_range: timedelta = timedelta(days=31)
    default_range: timedelta = timedelta(days=7)
    max_page_size: int = 200
    max_rows: int = 2000  # offset + limit: deeper paging is refused (narrow the query instead)
    min_wildcard_literals: int = 4
    min_literal_run: int = 3  # pg_trgm / FTS5 trigram need three consecutive known characters to use the index
    max_wildcards: int = 4
    max_fuzzy_distance: float = 2.0
    max_cameras: int = 500
    max_candidates: int = 5000  # distinct plates a wildcard/fuzzy query may expand to


class SearchQuery(BaseModel):
    """A search as a caller states it (CLI options, a web API body)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(max_length=64, description="plate, or wildcard pattern (* any run, ? one character)")
    mode: SearchMode = SearchMode.EXACT
    since: AwareDatetime | None = Field(default=None, description="inclusive; default: until - default range")
    until: AwareDatetime | None = Field(default=None, description="exclusive; default: now")
    cameras: tuple[str, ...] = Field(default=(), description="only these cameras (empty: all)")
    max_distance: float = Field(default=1.0, gt=0.0, description="fuzzy: weighted edit distance allowed")
    limit: int = Field(default=50, ge=1)
    offset: int = Field(default=0, ge=0)

    def describe(self) -> dict[str, object]:
        """The query and filters as plain JSON values (what the audit log records)."""
        return {
            "text": self.text,
            "mode": self.mode.value,
            "since": self.since.astimezone(UTC).isoformat() if self.since else None,
            "until": self.until.astimezone(UTC).isoformat() if self.until else None,
            "cameras": list(self.cameras),
            "max_distance": self.max_distance if self.mode is SearchMode.FUZZY else None,
            "limit": self.limit,
            "offset": self.offset,
        }


@dataclass(frozen=True, slots=True)
class ValidQuery:
    """A query that passed every bound; stores execute only these.

    ``plate`` is the normalised plate (exact, fuzzy) or the normalised pattern (wildcard);
    ``like`` and ``like_folded`` are SQL LIKE patterns built only from ``[A-Z0-9%_]``.
    """

    mode: SearchMode
    plate: str
    since: datetime
    until: datetime
    cameras: tuple[str, ...] = ()
    max_distance: float = 0.0
    limit: int = 50
    offset: int = 0
    like: str = ""
    like_folded: str = ""
    folded: str = ""
    max_candidates: int = 5000
    literals: tuple[str, ...] = field(default=())


def _wildcard(text: str, limits: SearchLimits) -> tuple[str, str, tuple[str, ...]]:
    try:
        pattern = normalise(text, allow="*?")
    except PlateTextError as exc:
        raise QueryError(f"{exc}; wildcards are * (any run) and ? (one character)") from None
    pattern = re.sub(r"\*+", "*", pattern)
    literals = tuple(r for r in re.split(r"[*?]+", pattern) if r)
    n_literal = sum(len(r) for r in literals)
    n_wild = sum(pattern.count(c) for c in "*?")
    if len(pattern.replace("*", "")) > PLATE_MAX_LEN:
        raise QueryError(f"pattern is longer than a plate ({PLATE_MAX_LEN} characters)")
    if n_literal < limits.min_wildcard_literals:
        raise QueryError(
            f"wildcard pattern {pattern!r} has {n_literal} known character(s); at least "
            f"{limits.min_wildcard_literals} are needed (e.g. 123*02 or ?23ABC02)"
        )
    if n_wild > limits.max_wildcards:
        raise QueryError(f"wildcard pattern {pattern!r} has {n_wild} wildcards; at most {limits.max_wildcards}")
    if max((len(r) for r in literals), default=0) < limits.min_literal_run:
        raise QueryError(
            f"wildcard pattern {pattern!r} needs {limits.min_literal_run} known characters in a row "
            "somewhere, so the index can narrow it (e.g. 123*02, not 1?2?3?4)"
        )
    return pattern, pattern.replace("*", "%").replace("?", "_"), literals


def validate(query: SearchQuery, limits: SearchLimits, now: datetime) -> ValidQuery:
    """Check every bound; raises :class:`QueryError` with a message for the investigator."""
    until = query.until or now
    since = query.since or (until - limits.default_range)
    if since >= until:
        raise QueryError("time range is empty: 'since' must be before 'until'")
    if until - since > limits.max_range:
        days = (until - since).total_seconds() / 86400
        raise QueryError(
            f"time range of {days:.1f} days exceeds the maximum of {limits.max_range.days} days; narrow it"
        )
    if len(query.cameras) > limits.max_cameras:
        raise QueryError(f"{len(query.cameras)} cameras given; at most {limits.max_cameras} per search")
    bad = [c for c in query.cameras if not _CAMERA_RE.match(c)]
    if bad:
        raise QueryError(f"not a camera id: {bad[0]!r} (lower-case letters, digits, '-' and '_')")
    if query.limit > limits.max_page_size:
        raise QueryError(f"page size {query.limit} exceeds the maximum of {limits.max_page_size}")
    if query.offset + query.limit > limits.max_rows:
        raise QueryError(
            f"results beyond row {limits.max_rows} are not paged; narrow the time range or cameras instead"
        )
    base = ValidQuery(
        mode=query.mode,
        plate="",
        since=since.astimezone(UTC),
        until=until.astimezone(UTC),
        cameras=tuple(sorted(set(query.cameras))),
        limit=query.limit,
        offset=query.offset,
        max_candidates=limits.max_candidates,
    )
    if query.mode is SearchMode.WILDCARD:
        pattern, like, literals = _wildcard(query.text, limits)
        return replace(base, plate=pattern, like=like, like_folded=fold(like), literals=literals)
    try:
        plate = normalise_plate(query.text)
    except PlateTextError as exc:
        hint = " (use --mode wildcard for * and ?)" if any(c in query.text for c in "*?%_") else ""
        raise QueryError(f"{exc}{hint}") from None
    if query.mode is SearchMode.FUZZY:
        if query.max_distance > limits.max_fuzzy_distance:
            raise QueryError(f"fuzzy distance {query.max_distance} exceeds the maximum of {limits.max_fuzzy_distance}")
        if len(plate) < 4:
            raise QueryError("fuzzy search needs at least 4 characters")
        return replace(base, plate=plate, folded=fold(plate), max_distance=query.max_distance)
    return replace(base, plate=plate)


def parse_query(**fields: object) -> SearchQuery:
    """Build a :class:`SearchQuery`, turning pydantic's errors into one :class:`QueryError`."""
    try:
        return SearchQuery.model_validate(fields)
    except ValidationError as exc:
        parts = [f"{'.'.join(str(p) for p in e['loc']) or 'query'}: {e['msg']}" for e in exc.errors()]
        raise QueryError("; ".join(parts)) from None
