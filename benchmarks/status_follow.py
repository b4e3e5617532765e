"""The camera-status topic read by a follower thread, as the city-scale benchmark and the camera-group test do.

Both watch every status of a run to see which worker held which camera when;
the follow-again loop and the per-camera spans they derive live here once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from event_bus import topics
from event_bus.kafka_group import FollowedBatch, follow_topic


def follow_statuses(
    bootstrap: str, client_id: str, stop: threading.Event, on_batch: Callable[[FollowedBatch], None]
) -> None:
    """Hand every batch of camera statuses (from the topic's beginning) to ``on_batch`` until ``stop``.

    The topic may not exist yet when a run starts, and a broker error ends a follow: follow again.
    """
    while not stop.is_set():
        try:
            for batch in follow_topic(bootstrap, topics.CAMERA_STATUS, client_id=client_id, stop=stop):
                on_batch(batch)
            return
        except Exception:  # the topic may not exist for a moment: follow again
            stop.wait(1.0)


@dataclass
class Span:
    """One worker's unbroken run of statuses for a camera: from its first to its last status."""

    worker: str
    first: float
    last: float


def worker_spans(statuses: Iterable[tuple[str, str, float]]) -> dict[str, list[Span]]:
    """(camera, worker, at) -> per camera, its spans in time order (a new span whenever the worker changes)."""
    spans: dict[str, list[Span]] = {}
    for camera, worker, at in sorted(statuses, key=lambda s: s[2]):
        runs = spans.setdefault(camera, [])
        if runs and runs[-1].worker == worker:
            runs[-1].last = at
        else:
            runs.append(Span(worker, at, at))
    return spans
