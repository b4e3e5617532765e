"""The camera board's index: every camera's last status in columns, so one filtered, sorted page of 20,000 is cheap.

Why columns (numpy arrays, one slot per camera) and not the store's rows:

* The board asks "cameras in zone north, state down, worker w-07, text '12', sorted by
  last-frame age, rows 200-299" several times a second while a dispatcher types. Over
  20,000 cameras a Python pass per request (shown state, filters, sort key per camera)
  costs tens of milliseconds; the same work as array operations costs about one.
* "Stale" is not stored anywhere: it is a camera whose worker has not re-sent its status
  for ``stale_after_ms``. It is derived from ``at_ms`` and the clock at query time, which
  is one vector comparison here.
* Zones are the console's camera groups (glob patterns over camera ids). A camera's
  membership never changes, so it is matched once, when the camera first reports, and
  kept as a boolean column per group.

The index is filled from the store on first use and then kept current by the feed hub's
camera observer (every status the store accepted, from this console's bus consumer or,
with replicas, from the shared database's change feed), newest ``at_ms`` per camera wins.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

import numpy as np
import numpy.typing as npt

from dispatch.line_counts import LineCountBoard
from storage.camera_health import CameraHealth

__all__ = ["BOARD_STATES", "SORT_KEYS", "BoardPage", "BoardQuery", "CameraBoard"]

# Board order: worst first. "stale" is derived (no status for stale_after_ms), never reported.
BOARD_STATES: tuple[str, ...] = ("down", "stale", "degraded", "up")
_CODE = {s: i for i, s in enumerate(BOARD_STATES)}
_DOWN, _STALE = _CODE["down"], _CODE["stale"]
_FLOWING = (_CODE["degraded"], _CODE["up"])
SORT_KEYS = ("state", "camera_id", "last_frame_age", "worker_id", "reconnects", "analysed_fps", "at_ms")
SortKey = Literal["state", "camera_id", "last_frame_age", "worker_id", "reconnects", "analysed_fps", "at_ms"]


@dataclass(frozen=True, slots=True)
class BoardQuery:
    """One page request; the API validates every field before it gets here."""

    state: str | None = None
    group: str | None = None
    worker: str | None = None
    text: str = ""
    sort: SortKey = "state"
    descending: bool = False
    offset: int = 0
    limit: int = 100


@dataclass(frozen=True, slots=True)
class BoardPage:
    items: list[dict[str, Any]]
    total: int  # every camera the console knows
    matching: int  # cameras that pass every filter
    counts: dict[str, int]  # per shown state, over the cameras that pass every filter but the state one
    workers: list[str]
    now_ms: int


class CameraBoard:
    """Thread-safe columnar index of camera health (writers: the bus thread; readers: request threads)."""

    def __init__(
        self,
        groups: dict[str, list[str]],
        stale_after_ms: int,
        *,
        capacity: int = 1024,
        line_counts: LineCountBoard | None = None,
    ) -> None:
        self.stale_after_ms = stale_after_ms
        self.line_counts = line_counts  # each row shows its camera's latest line counts (looked up per page row)
        self.group_names = sorted(groups)
        self._patterns = [groups[g] for g in self.group_names]
        self._lock = threading.Lock()
        self._loaded = False
        self._pos: dict[str, int] = {}
        self._rows: list[CameraHealth] = []
        self._text: list[str] = []  # lower-cased "camera worker reason", for the text filter
        self._workers: list[str] = []
        self._worker_code: dict[str, int] = {}
        self._state = np.zeros(capacity, np.int8)
        self._at = np.zeros(capacity, np.int64)
        self._frame = np.full(capacity, -1, np.int64)  # last frame time, ms; -1: never
        self._worker = np.zeros(capacity, np.int32)
        self._reconnects = np.zeros(capacity, np.int64)
        self._fps = np.zeros(capacity, np.float64)
        self._member = np.zeros((len(self.group_names), capacity), np.bool_)
        self._id_rank: npt.NDArray[np.int64] | None = None  # position -> rank by camera id; rebuilt after inserts

    def __len__(self) -> int:
        return len(self._rows)

    def ensure_loaded(self, load: Callable[[], Sequence[CameraHealth]]) -> None:
        """Fill from the store once; statuses the observer applied meanwhile are kept when newer."""
        if self._loaded:
            return
        rows = load()
        with self._lock:
            if not self._loaded:
                self._apply(rows)
                self._loaded = True

    def update(self, statuses: Sequence[CameraHealth]) -> None:
        """Feed-hub observer: the statuses the store accepted (newest ``at_ms`` per camera wins here too)."""
        with self._lock:
            self._apply(statuses)

    def _apply(self, statuses: Sequence[CameraHealth]) -> None:
        for s in statuses:
            i = self._pos.get(s.camera_id)
            if i is None:
                i = self._insert(s.camera_id)
            elif self._rows[i].at_ms > s.at_ms:
                continue
            self._rows[i] = s
            self._text[i] = f"{s.camera_id}\n{s.worker_id}\n{s.reason}".lower()
            self._state[i] = _CODE.get(s.state, _DOWN)
            self._at[i] = s.at_ms
            self._frame[i] = -1 if s.last_frame_at_ms is None else s.last_frame_at_ms
            self._worker[i] = self._code_of(s.worker_id)
            self._reconnects[i] = s.reconnects
            self._fps[i] = s.analysed_fps

    def _insert(self, camera_id: str) -> int:
        i = len(self._rows)
        if i == len(self._state):
            self._grow(2 * i)
        self._pos[camera_id] = i
        self._rows.append(CameraHealth(camera_id, "down", "", 0.0, 0.0, None, 0, "", -1))
        self._text.append("")
        for g, pats in enumerate(self._patterns):
            self._member[g, i] = _matches(camera_id, pats)
        self._id_rank = None
        return i

    def _grow(self, capacity: int) -> None:
        self._state, self._at = _grown(self._state, capacity, 0), _grown(self._at, capacity, 0)
        self._worker, self._frame = _grown(self._worker, capacity, 0), _grown(self._frame, capacity, -1)
        self._reconnects, self._fps = _grown(self._reconnects, capacity, 0), _grown(self._fps, capacity, 0.0)
        self._member = _grown(self._member, capacity, False)

    def _code_of(self, worker_id: str) -> int:
        code = self._worker_code.get(worker_id)
        if code is None:
            code = self._worker_code[worker_id] = len(self._workers)
            self._workers.append(worker_id)
        return code

    def page(self, q: BoardQuery, now_ms: int) -> BoardPage:
        """One page of the board: filters, per-state counts, sort (camera id breaks ties), offset and limit."""
        with self._lock:
            n = len(self._rows)
            shown = self._shown(n, now_ms)
            base = np.ones(n, np.bool_)
            if q.worker is not None:
                code = self._worker_code.get(q.worker)
                base &= self._worker[:n] == (-1 if code is None else code)
            if q.group is not None:
                base &= self._member[self.group_names.index(q.group), :n]
            if q.text:
                needle, text = q.text.lower(), self._text
                hits = [i for i in np.flatnonzero(base).tolist() if needle in text[i]]
                base = np.zeros(n, np.bool_)
                base[hits] = True
            counts = np.bincount(shown[base], minlength=len(BOARD_STATES))
            chosen = np.flatnonzero(base & (shown == _CODE[q.state]) if q.state is not None else base)
            age = self._age_ms(n, shown, now_ms)
            order = chosen[self._order(q, chosen, shown, age)]
            page = order[q.offset : q.offset + q.limit]
            items = [self._item(int(i), shown, age) for i in page]
            return BoardPage(
                items=items,
                total=n,
                matching=len(chosen),
                counts={s: int(counts[k]) for k, s in enumerate(BOARD_STATES)},
                workers=sorted(self._workers),
                now_ms=now_ms,
            )

    def _shown(self, n: int, now_ms: int) -> npt.NDArray[np.int8]:
        shown = self._state[:n].copy()
        if self.stale_after_ms > 0:
            shown[(shown != _DOWN) & (now_ms - self._at[:n] > self.stale_after_ms)] = _STALE
        return shown

    def _age_ms(self, n: int, shown: npt.NDArray[np.int8], now_ms: int) -> npt.NDArray[np.float64]:
        """Last-frame age. Flowing cameras: as of their last report (frames keep coming; it shows lag).
        Down or stale: up to now, so it grows while the camera stays dark. Never had a frame: infinite."""
        frame = self._frame[:n]
        flowing = np.isin(shown, _FLOWING)
        age = np.where(flowing, self._at[:n] - frame, now_ms - frame).astype(np.float64)
        age[frame < 0] = np.inf
        return np.maximum(age, 0.0)

    def _order(
        self, q: BoardQuery, chosen: npt.NDArray[np.intp], shown: npt.NDArray[np.int8], age: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.intp]:
        rank = self._ranks()[chosen]
        if q.sort == "camera_id":
            return np.argsort(-rank if q.descending else rank, kind="stable")
        primary: npt.NDArray[Any]
        if q.sort == "state":
            primary = shown[chosen].astype(np.int64)
        elif q.sort == "last_frame_age":
            primary = age[chosen]
        elif q.sort == "worker_id":
            worker_rank = np.argsort(np.argsort(np.array(self._workers, dtype=object)))
            primary = worker_rank[self._worker[chosen]] if len(self._workers) else np.zeros(0, np.int64)
        elif q.sort == "reconnects":
            primary = self._reconnects[chosen]
        elif q.sort == "analysed_fps":
            primary = self._fps[chosen]
        else:
            primary = self._at[chosen]
        order: npt.NDArray[np.intp] = np.lexsort((rank, -primary if q.descending else primary))
        return order

    def _ranks(self) -> npt.NDArray[np.int64]:
        if self._id_rank is None:
            by_id = sorted(range(len(self._rows)), key=lambda i: self._rows[i].camera_id)
            rank = np.empty(len(by_id), np.int64)
            rank[by_id] = np.arange(len(by_id))
            self._id_rank = rank
        return self._id_rank

    def _item(self, i: int, shown: npt.NDArray[np.int8], age: npt.NDArray[np.float64]) -> dict[str, Any]:
        row = self._rows[i]
        doc = row.to_json()
        st = BOARD_STATES[int(shown[i])]
        doc["shown"] = st
        doc["stale"] = st == "stale"
        doc["last_frame_age_ms"] = None if np.isinf(age[i]) else int(age[i])
        doc["groups"] = [g for k, g in enumerate(self.group_names) if self._member[k, i]]
        doc["line_counts"] = self.line_counts.get(row.camera_id) if self.line_counts is not None else None
        return doc


_Array = TypeVar("_Array", bound=npt.NDArray[Any])


def _grown(a: _Array, capacity: int, fill: float) -> _Array:
    """The same column with room for ``capacity`` cameras (the last axis is the camera slot)."""
    out = np.full((*a.shape[:-1], capacity), fill, a.dtype)
    out[..., : a.shape[-1]] = a
    return cast(_Array, out)


def _matches(camera_id: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(camera_id, p) for p in patterns)
