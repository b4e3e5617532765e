"""Per-camera multi-object tracking with supervision's ByteTrack.

One :class:`CameraTracker` per camera (and per model): ByteTrack's state is a
single video's, so sharing one across cameras would link unrelated boxes.
The tracker's time buffer is configured in seconds and turned into frames at
the camera's *analysis* rate, because that is the rate the tracker sees.

Unlike ``sv.ByteTrack.update_with_detections``, which drops every box it did
not (yet) assign to a track, ``update`` returns all input boxes with
``tracker_id`` = -1 for untracked ones, and keeps Kuzet's canonical
``class_id`` and ``data`` fields: rules decide what to do with untracked boxes
(fire regions, for instance, do not need a track).
"""

from __future__ import annotations

import math

import numpy as np
import supervision as sv

from core.config import TrackingConfig
from core.detections import Detections

_INDEX_KEY = "_kuzet_index"


class CameraTracker:
    """ByteTrack for one camera stream."""

    def __init__(self, cfg: TrackingConfig, frame_rate: float) -> None:
        if frame_rate <= 0:
            raise ValueError("frame_rate must be positive")
        self.cfg = cfg
        self.frame_rate = frame_rate
        # sv.ByteTrack keeps a lost track for int(frame_rate / 30 * lost_track_buffer) frames;
        # pass frame_rate=30 so lost_track_buffer is exactly the number of analysed frames we mean.
        buffer_frames = max(1, math.ceil(cfg.lost_track_buffer_s * frame_rate))
        self._tracker = sv.ByteTrack(
            track_activation_threshold=cfg.track_activation_threshold,
            lost_track_buffer=buffer_frames,
            minimum_matching_threshold=cfg.minimum_matching_threshold,
            frame_rate=30,
            minimum_consecutive_frames=1,
        )

    def update(self, det: Detections) -> Detections:
        """Detections of the next analysed frame -> the same boxes with ``tracker_id`` (-1: no track)."""
        n = len(det)
        sv_det = sv.Detections(
            xyxy=det.xyxy.astype(np.float32),
            confidence=det.confidence.astype(np.float32),
            class_id=det.class_id.astype(int),
            data={_INDEX_KEY: np.arange(n)},
        )
        tracked = self._tracker.update_with_detections(sv_det)
        ids = np.full(n, -1, dtype=np.int64)
        if len(tracked) and tracked.tracker_id is not None:
            ids[np.asarray(tracked.data[_INDEX_KEY], dtype=np.int64)] = np.asarray(tracked.tracker_id, np.int64)
        return det.with_tracker_id(ids)

    def reset(self) -> None:
        """Forget every track (camera reconnected, scene changed)."""
        self._tracker.reset()
