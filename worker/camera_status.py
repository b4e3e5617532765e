"""The one place a worker builds a ``CameraStatus`` event: from a camera's :class:`~ingest.camera.StatusChange`.

Status changes from a camera runner, periodic heartbeats and the
``unassigned-capacity`` status of cameras a full worker cannot start all go
through :func:`camera_status`, so every status a worker sends has the same
fields, filled the same way.
"""

from __future__ import annotations

from event_bus.events import CameraStatus
from ingest.camera import StatusChange


def camera_status(change: StatusChange, worker_id: str) -> CameraStatus:
    return CameraStatus(
        camera_id=change.camera_id,
        state=change.state,
        reason=change.reason,
        input_fps=change.input_fps,
        analysed_fps=change.analysed_fps,
        last_frame_at=change.last_frame_at,
        reconnects=change.reconnects,
        worker_id=worker_id,
        at=change.at,
    )
