"""Camera health as the console last heard it: one row per camera, the newest status wins.

Fed by ``kuzet.camera-status.v1`` through the console's bus consumer (which
converts each ``CameraStatus`` event, since storage does not import the bus);
read by the camera board and the API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from storage.db import Cursor, Store

__all__ = ["CameraHealth", "CameraHealthStore"]


@dataclass(frozen=True, slots=True)
class CameraHealth:
    camera_id: str
    state: str
    reason: str
    input_fps: float
    analysed_fps: float
    last_frame_at_ms: int | None
    reconnects: int
    worker_id: str
    at_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "camera_id": self.camera_id,
            "state": self.state,
            "reason": self.reason,
            "input_fps": round(self.input_fps, 2),
            "analysed_fps": round(self.analysed_fps, 2),
            "last_frame_at_ms": self.last_frame_at_ms,
            "reconnects": self.reconnects,
            "worker_id": self.worker_id,
            "at_ms": self.at_ms,
        }


_DDL = """
CREATE TABLE IF NOT EXISTS wf_cameras (
    camera_id        TEXT PRIMARY KEY,
    state            TEXT NOT NULL,
    reason           TEXT NOT NULL,
    input_fps        DOUBLE PRECISION NOT NULL,
    analysed_fps     DOUBLE PRECISION NOT NULL,
    last_frame_at_ms BIGINT,
    reconnects       BIGINT NOT NULL,
    worker_id        TEXT NOT NULL,
    at_ms            BIGINT NOT NULL
);
"""
_CAMERA_COLS = "camera_id, state, reason, input_fps, analysed_fps, last_frame_at_ms, reconnects, worker_id, at_ms"


def _camera(row: Sequence[Any]) -> CameraHealth:
    cid, state, reason, in_fps, an_fps, last, reconnects, worker, at = row
    return CameraHealth(
        cid, state, reason, float(in_fps), float(an_fps), None if last is None else int(last), int(reconnects),
        worker, int(at),
    )  # fmt: skip


class CameraHealthStore(Store):
    """The newest reported health per camera."""

    def _migrate(self, c: Cursor) -> None:
        super()._migrate(c)
        c.script(_DDL)

    def upsert_cameras(self, statuses: Sequence[CameraHealth]) -> list[CameraHealth]:
        """Keep the newest status per camera (by its ``at``); returns those that replaced an older one."""
        changed: list[CameraHealth] = []
        with self._db.tx() as c:
            for s in statuses:
                row = c.execute("SELECT at_ms FROM wf_cameras WHERE camera_id = ?", (s.camera_id,)).fetchone()
                if row is not None and int(row[0]) > s.at_ms:
                    continue
                c.execute(
                    f"INSERT INTO wf_cameras ({_CAMERA_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "  # noqa: S608
                    "ON CONFLICT (camera_id) DO UPDATE SET state = excluded.state, reason = excluded.reason, "
                    "input_fps = excluded.input_fps, analysed_fps = excluded.analysed_fps, "
                    "last_frame_at_ms = excluded.last_frame_at_ms, reconnects = excluded.reconnects, "
                    "worker_id = excluded.worker_id, at_ms = excluded.at_ms",
                    (s.camera_id, s.state, s.reason, s.input_fps, s.analysed_fps, s.last_frame_at_ms, s.reconnects,
                     s.worker_id, s.at_ms),
                )  # fmt: skip
                changed.append(s)
        return changed

    def cameras(self) -> list[CameraHealth]:
        return [_camera(r) for r in self._db.read(f"SELECT {_CAMERA_COLS} FROM wf_cameras ORDER BY camera_id")]  # noqa: S608
