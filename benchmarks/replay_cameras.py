"""Cameras that replay one clip as fast as a worker takes frames: the worker benchmarks' (CPU and GPU) load."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from core.config import CameraConfig, Zone


def replay_cameras(prefix: str, clip: Path, n: int, models: Sequence[str], zone: Zone) -> list[CameraConfig]:
    """``n`` cameras ``{prefix}-{i}`` looping ``clip`` without real-time pacing, every model on, one zone."""
    return [
        CameraConfig(
            id=f"{prefix}-{i}",
            url=str(clip),
            analysis_fps=30.0,
            loop=True,
            realtime=False,
            detectors=list(models),
            zones=[zone],
        )
        for i in range(n)
    ]
