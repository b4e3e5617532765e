"""Camera health states, shared by ingest (which observes them) and the events that report them."""

from __future__ import annotations

from enum import StrEnum


class CameraState(StrEnum):
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
