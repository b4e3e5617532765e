"""Orchestration ceiling: the frames/s the worker's Python stages sustain when the model costs nothing.

In-memory frames (no decode), a detector that returns canned boxes at zero
cost (three walking people and a flame region per frame, so the tracker,
the zone rules and the fire rules all work), the real batcher, analysis,
plate and sink stages, and a real fsynced spool. Whatever this reaches is
what would cap an accelerator that infers for free. The same analysis is
also timed alone on one thread (no queues, no other threads), which is the
cost of the per-frame Python work itself.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

from core.config import BatchConfig, CameraConfig, RulesConfig, TrackingConfig, Zone
from core.detections import Detections
from core.frame import Frame
from core.labels import Label
from detectors.tracking import CameraTracker
from event_bus.interfaces import OutRecord
from event_bus.spool import Spool
from plate_reader.pipeline import PlateOcr
from plate_reader.reader import PlateReader
from storage.local_store import LocalSnapshotStore
from worker.analysis import AnalysisSettings, CameraAnalysis
from worker.events import EventBuilder, Outgoing
from worker.pipeline import Pipeline
from worker.plate_stage import PlateStage

W, H = 768, 576
ZONE = Zone(name="road", polygon=[(0.0, 0.3), (1.0, 0.3), (1.0, 1.0), (0.0, 1.0)])
LABELS = {Label.PERSON, Label.FIRE, Label.SMOKE}
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def canned(seq: int) -> Detections:
    """Three people walking down the frame and a flickering flame: enough to keep every rule busy."""
    step = seq % 200
    people = [[100 + 200 * k, 100 + 2 * step, 140 + 200 * k, 190 + 2 * step] for k in range(3)]
    rows = [*people, [600, 60, 680, 140]] if step % 3 else people
    n = len(rows)
    cls = [int(Label.PERSON)] * 3 + [int(Label.FIRE)] * (n - 3)
    return Detections(np.array(rows, np.float32), np.full(n, 0.8, np.float32), np.array(cls))


class CannedDetector:
    """Zero-cost model: the boxes of each frame are looked up by the image's identity."""

    name = "canned"
    version = "canned@0"

    def __init__(self, plan: dict[int, Detections]) -> None:
        self._plan = plan

    def detect(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        return [self._plan[id(img)] for img in images]


@dataclass
class CeilingResult:
    cameras: int
    batch: int
    frames_per_s: float
    events: int
    analysis_alone_frames_per_s: float
    analysis_alone_ms_per_frame: float
    tracking_share: float  # of the analysis-alone time, in supervision's ByteTrack (CameraTracker.update)


def _images(n: int) -> tuple[list[npt.NDArray[np.uint8]], dict[int, Detections]]:
    images: list[npt.NDArray[np.uint8]] = [np.full((H, W, 3), 20 + i, np.uint8) for i in range(n)]
    return images, {id(img): canned(i) for i, img in enumerate(images)}


def analysis_alone(seconds: float) -> tuple[float, float]:
    """Frames/s of one camera's tracking + rules called in a plain loop (the per-frame Python cost), and the
    share of that time spent in the tracker (ByteTrack), timed around each ``CameraTracker.update`` call."""
    images, plan = _images(200)
    cam = CameraConfig(id="alone", url="file:///dev/null", analysis_fps=25.0, zones=[ZONE])
    analysis = CameraAnalysis(cam, "canned", "canned@0", LABELS, AnalysisSettings(RulesConfig(), TrackingConfig()))
    tracking_s = 0.0
    update = CameraTracker.update

    def timed_update(tracker: CameraTracker, det: Detections) -> Detections:
        nonlocal tracking_s
        t = time.perf_counter()
        try:
            return update(tracker, det)
        finally:
            tracking_s += time.perf_counter() - t

    CameraTracker.update = timed_update  # type: ignore[method-assign,assignment]  # this loop only, restored below
    try:
        done, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            i = done % len(images)
            frame = Frame("alone", done, T0 + timedelta(seconds=done / 25), done / 25, False, images[i])
            analysis.process(frame, plan[id(images[i])])
            done += 1
        elapsed = time.perf_counter() - t0
    finally:
        CameraTracker.update = update  # type: ignore[method-assign]
    return done / elapsed, tracking_s / elapsed


def ceiling(n_cameras: int, batch: int, seconds: float) -> CeilingResult:
    """Frames/s through decode-free batcher -> analysis -> sink with ``n_cameras`` feeding as fast as they may."""
    images, plan = _images(200)
    with tempfile.TemporaryDirectory() as tmp:
        spool = Spool(Path(tmp) / "spool.sqlite3")
        store = LocalSnapshotStore(Path(tmp) / "snaps")
        events = 0

        def write(out: Outgoing) -> None:
            nonlocal events
            record = OutRecord(out.topic, out.event.camera_id, out.event.model_dump_json().encode())
            key = out.event.snapshot.key if out.snapshot_jpeg is not None and out.event.snapshot else None
            spool.append(record, blob=out.snapshot_jpeg, blob_key=key)
            events += 1

        def no_plates(cid: str, model: str, versions: dict[str, str], ocr: PlateOcr) -> PlateReader:
            raise AssertionError("no plate model in the ceiling run")

        pipeline = Pipeline(
            BatchConfig(max_batch=batch, max_wait_ms=10),
            PlateStage(PlateOcr, no_plates),
            EventBuilder("bench", store.ref_for),
            write,
        )
        pipeline.add_model("canned", CannedDetector(plan))
        settings = AnalysisSettings(RulesConfig(), TrackingConfig())
        for c in range(n_cameras):
            cam = CameraConfig(id=f"c{c}", url="file:///dev/null", analysis_fps=25.0, zones=[ZONE])
            analyses = {"canned": CameraAnalysis(cam, "canned", "canned@0", LABELS, settings)}
            pipeline.add_camera(cam.id, analyses, realtime=False)
        stop = threading.Event()

        def feed(cid: str) -> None:
            seq = 0
            while not stop.is_set():
                img = images[seq % len(images)]
                frame = Frame(cid, seq, T0 + timedelta(seconds=seq / 25), seq / 25, False, img)
                pipeline.submit(frame, ["canned"], wait=True)
                seq += 1

        feeders = [threading.Thread(target=feed, args=(f"c{c}",), daemon=True) for c in range(n_cameras)]
        for t in feeders:
            t.start()
        time.sleep(1.0)  # warm-up: trackers created, first incidents written
        a0 = pipeline.stats().queues["analysis"].done
        t0 = time.perf_counter()
        time.sleep(seconds)
        analysed = pipeline.stats().queues["analysis"].done - a0
        elapsed = time.perf_counter() - t0
        stop.set()
        for t in feeders:
            t.join(5)
        pipeline.wait_idle(30)
        pipeline.stop()
        spool.close()
    alone, tracking_share = analysis_alone(min(seconds, 3.0))
    return CeilingResult(n_cameras, batch, analysed / elapsed, events, alone, 1000.0 / alone, tracking_share)
