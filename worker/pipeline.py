"""The worker's stages and the bounded queues between them, declared in one place.

::

    decode            one thread per camera (ingest.CameraRunner)
      │   batcher slot, one frame per camera and model:
      │     live camera: newest frame wins (the older is dropped, counted per camera)
      │     file replay (realtime: false): the decoder is held until its frame is batched
      ▼
    inference         one thread per model (detectors.BatchScheduler): pre-processing, model, post-processing
      │   analysis queue (ANALYSIS_CAPACITY results): HOLD the producer
      │     (a file replay's results hold already at REPLAY_HOLD_RESULTS)
      ▼
    analysis          one thread: tracking, zone and fire rules (worker.analysis); a ticket per camera item
      │          └─── incidents ──────────────────────────────────────────────┐
      │   plate queue (PLATE_CAPACITY frames):                                  │
      │     live camera: DROP_OLDEST (counted per camera; its ticket is passed)│
      │     file replay: HOLD the producer at REPLAY_HOLD_PLATES                │
      ▼                                                                         │
    plate reading     one thread: crops of all cameras in one OCR call, votes   │
      │   sink queue (SINK_CAPACITY items): HOLD the producer                   │
      ▼                                                                         ▼
    sink              one thread: each camera's tickets in order; snapshot encode, event build, spool append

Why these policies: the inference stage must never wait on OCR or the disk.
OCR and disk sit behind the analysis stage, which only does cheap CPU work;
the plate queue drops for live cameras instead of pushing back, and the
sink queue is large enough that only a disk failing for minutes could fill
it (events are never dropped, so it holds). A frame dropped anywhere is
counted per camera (``stats()`` and the ``kuzet_stage_dropped`` metric).
A file replayed faster than real time wants every frame, so there the
queues hold instead and the whole replay runs at the slowest stage's pace.
Its producers hold at a short depth, not at capacity: a deep
backlog behind the slowest stage would only delay its events and its stop
(minutes of queued OCR at 16 cameras), and would let the stages before it
run ahead of what the worker can finish.

Threads, not processes: PyAV, onnxruntime and OpenCV release the GIL while
they work and frames pass by reference. ``benchmarks/pipeline.py`` measures
the orchestration ceiling this gives.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.config import BatchConfig
from core.detections import Detections
from core.frame import Frame
from detectors.batcher import BatchScheduler, BatchStats
from detectors.registry import Detector
from ingest.masking import Polygon
from worker.analysis import CameraAnalysis
from worker.events import Draft, EventBuilder, Outgoing, PlateDraft
from worker.plate_stage import PlateStage, PlateTask
from worker.sink import Sink, SinkItem
from worker.stage_queue import Overflow, QueueClosedError, QueueStats, StageQueue

log = logging.getLogger(__name__)

ANALYSIS_CAPACITY = 4096
PLATE_CAPACITY = 256
SINK_CAPACITY = 8192
# A file replay's producers hold at these depths: enough to keep the next stage busy (8 plate frames are
# about 32 crops, one well-filled recogniser call), little enough that the replay runs at its slowest stage's
# pace within seconds (a deeper backlog lets inference take the cores the plate stage needs until it fills)
# and its backlog (and its stop) stays at a second or two of work.
REPLAY_HOLD_RESULTS = 12
REPLAY_HOLD_PLATES = 8
_PLATE_ROUND = 64  # frames per plate round (their crops go into recogniser calls of up to max_crops)
_ANALYSIS_ROUND = REPLAY_HOLD_RESULTS  # results the analysis thread takes per wake-up: what it takes, it holds
# while it waits for room in a replay's plate queue, so a larger round would undo the replay's short backlog
_SINK_ROUND = 256  # items the sink thread takes per wake-up


@dataclass(frozen=True)
class _Result:
    model: str
    frame: Frame
    detections: Detections


@dataclass(frozen=True)
class _Open:
    camera_id: str
    analyses: dict[str, CameraAnalysis]
    realtime: bool


@dataclass(frozen=True)
class _Close:
    camera_id: str
    at: datetime
    done: threading.Event


_AnalysisItem = _Result | _Open | _Close


@dataclass(frozen=True)
class _PlateItem:
    ticket: int
    task: PlateTask
    done: threading.Event | None = None


def _masks_of(analysis: CameraAnalysis) -> tuple[Polygon, ...]:
    """The camera's privacy masks, carried with its plate frames so plate-read snapshots are masked too."""
    return tuple(m.polygon for m in analysis.camera.privacy_masks)


@dataclass
class _Live:
    analyses: dict[str, CameraAnalysis]
    realtime: bool


@dataclass
class PipelineStats:
    """Per stage: its queue's counters; plus the plate stage's rounds and the sink's counts."""

    queues: dict[str, QueueStats] = field(default_factory=dict)
    plate_rounds: int = 0
    plate_crops: int = 0
    events_written: int = 0
    events_failed: int = 0
    analysis_errors: int = 0
    plate_errors: int = 0


class Pipeline:
    """Stages of one worker: batchers per model, then analysis, plate reading and sink threads."""

    def __init__(
        self,
        batch: BatchConfig,
        plates: PlateStage,
        builder: EventBuilder,
        write: Callable[[Outgoing], None],
        on_inferred: Callable[[Frame], None] | None = None,
    ) -> None:
        self._batch = batch
        self._on_inferred = on_inferred
        self._plates = plates
        self._sink = Sink(builder, write)
        self._schedulers: dict[str, BatchScheduler] = {}
        # declared here, with their policies (see the module docstring for why)
        self.analysis_q: StageQueue[_AnalysisItem] = StageQueue("analysis", ANALYSIS_CAPACITY, Overflow.HOLD)
        self.plate_q: StageQueue[_PlateItem] = StageQueue(
            "plate", PLATE_CAPACITY, Overflow.DROP_OLDEST, on_drop=self._plate_dropped
        )
        self.sink_q: StageQueue[SinkItem] = StageQueue("sink", SINK_CAPACITY, Overflow.HOLD)
        self._live: dict[str, _Live] = {}  # analysis thread only
        self._replay: frozenset[str] = frozenset()  # file-replay cameras; replaced whole, read by batch threads
        self._tickets: dict[str, int] = {}  # analysis thread only (and drop callbacks it triggers)
        self._stats = PipelineStats()
        self._threads = [
            threading.Thread(
                target=self._loop, args=(self.analysis_q, _ANALYSIS_ROUND, self._analyse), name="analysis"
            ),
            threading.Thread(target=self._loop, args=(self.plate_q, _PLATE_ROUND, self._read_plates), name="plates"),
            threading.Thread(target=self._loop, args=(self.sink_q, _SINK_ROUND, self._write), name="sink"),
        ]
        for t in self._threads:
            t.daemon = True
            t.start()

    # -- models and cameras --------------------------------------------------------------------------------

    def add_model(self, name: str, detector: Detector) -> BatchScheduler:
        """Start the inference stage of one model."""
        scheduler = BatchScheduler(
            detector,
            max_batch=self._batch.max_batch,
            max_wait_s=self._batch.max_wait_ms / 1000.0,
            on_result=functools.partial(self._inferred, name),
        )
        scheduler.start()
        self._schedulers[name] = scheduler
        return scheduler

    def has_model(self, name: str) -> bool:
        return name in self._schedulers

    def models(self) -> list[str]:
        return sorted(self._schedulers)

    def add_camera(self, camera_id: str, analyses: dict[str, CameraAnalysis], realtime: bool) -> None:
        """Open a camera's analysis; its decoder may submit frames from now on."""
        self._replay = self._replay - {camera_id} if realtime else self._replay | {camera_id}
        self.analysis_q.put(camera_id, _Open(camera_id, analyses, realtime))
        for model in analyses:
            self._schedulers[model].add_source(camera_id)

    def remove_camera(self, camera_id: str, at: datetime, timeout_s: float = 30.0) -> bool:
        """End a camera: its open incidents and plate passes end, written after its earlier events.

        Call after its decoder stopped. Returns True once its last events are written (False on timeout).
        """
        return not self.remove_cameras([camera_id], at, timeout_s)

    def remove_cameras(self, camera_ids: list[str], at: datetime, timeout_s: float = 30.0) -> list[str]:
        """End several cameras at once, all within one ``timeout_s``; the ids whose last events are not written.

        One deadline for all, not one each: a worker stopping its cameras one after another behind a
        backlog would wait ``timeout_s`` per camera (minutes for 16), past any orchestrator's grace period.
        """
        waits: list[tuple[str, threading.Event]] = []
        for camera_id in camera_ids:
            for scheduler in self._schedulers.values():
                scheduler.remove_source(camera_id)
            self._replay = self._replay - {camera_id}
            done = threading.Event()
            try:
                self.analysis_q.put(camera_id, _Close(camera_id, at, done))
            except QueueClosedError:
                return list(camera_ids)
            waits.append((camera_id, done))
        end = time.monotonic() + timeout_s
        return [camera_id for camera_id, done in waits if not done.wait(max(0.0, end - time.monotonic()))]

    def submit(self, frame: Frame, models: list[str], wait: bool) -> None:
        """Decode -> inference: hand a frame to each of its camera's models (``wait``: file replay)."""
        for model in models:
            self._schedulers[model].submit(frame, wait=wait)

    # -- lifecycle -----------------------------------------------------------------------------------------

    def wait_idle(self, timeout_s: float) -> bool:
        """Until every frame handed to a batcher has gone through every stage (end of a file run, tests)."""
        end = time.monotonic() + timeout_s
        while True:
            left = max(0.0, end - time.monotonic())
            ok = all(s.wait_idle(left) for s in self._schedulers.values())
            ok = ok and all(q.join(max(0.0, end - time.monotonic())) for q in self._queues())
            if not ok:
                return False
            if all(s.pending() == 0 for s in self._schedulers.values()) and all(q.idle() for q in self._queues()):
                return True

    def stop(self, timeout_s: float = 30.0) -> None:
        """Drain and stop every stage, upstream first.

        A stage's queue is closed only once every stage before it has finished, so nothing that is
        still being worked on upstream meets a closed queue. A stage still busy after ``timeout_s``
        (OCR on a starved CPU) is left to finish on its own thread, and so are the stages after it.
        """
        for scheduler in self._schedulers.values():
            scheduler.stop()
        for q, thread in zip(self._queues(), self._threads, strict=True):
            q.close()  # its producers have stopped; the stage drains what is queued, then its thread ends
            thread.join(timeout_s)
            if thread.is_alive():
                log.warning("stage %s still busy after %.0f s; it and the stages after it finish on their own",
                            q.name, timeout_s)  # fmt: skip
                return

    def _queues(self) -> list[StageQueue[Any]]:
        return [self.analysis_q, self.plate_q, self.sink_q]

    # -- stats ---------------------------------------------------------------------------------------------

    def scheduler_stats(self) -> dict[str, BatchStats]:
        return {name: s.stats() for name, s in self._schedulers.items()}

    def stats(self) -> PipelineStats:
        s = self._stats
        return PipelineStats(
            queues={q.name: q.stats() for q in self._queues()},
            plate_rounds=self._plates.rounds,
            plate_crops=self._plates.crops_read,
            events_written=self._sink.written,
            events_failed=self._sink.failed,
            analysis_errors=s.analysis_errors,
            plate_errors=s.plate_errors,
        )

    # -- stage bodies --------------------------------------------------------------------------------------

    def _inferred(self, model: str, frame: Frame, detections: Detections) -> None:
        """Inference -> analysis (on the model's batch thread: a put, and a note of the time for health)."""
        hold_at = REPLAY_HOLD_RESULTS if frame.camera_id in self._replay else None
        self.analysis_q.put(frame.camera_id, _Result(model, frame, detections), hold_at=hold_at)
        if self._on_inferred is not None:
            self._on_inferred(frame)

    @staticmethod
    def _loop(q: StageQueue[Any], limit: int, body: Callable[[list[Any]], None]) -> None:
        while True:
            items = q.get_many(limit)
            if not items:
                return
            try:
                body(items)
            except Exception:
                log.exception("stage %s failed on %d items", q.name, len(items))
            finally:
                q.task_done(len(items))

    def _ticket(self, camera_id: str) -> int:
        n = self._tickets.get(camera_id, 0)
        self._tickets[camera_id] = n + 1
        return n

    def _analyse(self, items: list[_AnalysisItem]) -> None:
        for item in items:
            try:
                if isinstance(item, _Result):
                    self._analyse_frame(item)
                elif isinstance(item, _Open):
                    self._live[item.camera_id] = _Live(item.analyses, item.realtime)
                else:
                    self._close(item)
            except Exception:
                self._stats.analysis_errors += 1
                log.exception("analysis of camera %s failed", getattr(item, "camera_id", "?"))

    def _analyse_frame(self, item: _Result) -> None:
        cam = self._live.get(item.frame.camera_id)
        analysis = cam.analyses.get(item.model) if cam is not None else None
        if cam is None or analysis is None:  # removed while its frame was in a batch
            return
        out = analysis.process(item.frame, item.detections)
        camera_id = item.frame.camera_id
        if out.incidents:
            self.sink_q.put(camera_id, SinkItem(self._ticket(camera_id), camera_id, list(out.incidents)))
        if out.plate is not None:
            task = PlateTask(camera_id, item.model, analysis.model_versions, out.plate, _masks_of(analysis))
            work = _PlateItem(self._ticket(camera_id), task)
            if cam.realtime:
                self.plate_q.put(camera_id, work, Overflow.DROP_OLDEST)
            else:
                self.plate_q.put(camera_id, work, Overflow.HOLD, hold_at=REPLAY_HOLD_PLATES)

    def _close(self, item: _Close) -> None:
        cam = self._live.pop(item.camera_id, None)
        if cam is None:
            item.done.set()
            return
        drafts: list[Draft] = [d for a in cam.analyses.values() for d in a.close(item.at)]
        plate_models = [(m, a) for m, a in cam.analyses.items() if a.reads_plates]
        last = len(plate_models) - 1
        self.sink_q.put(item.camera_id, SinkItem(self._ticket(item.camera_id), item.camera_id, drafts,
                                                 item.done if last < 0 else None))  # fmt: skip
        for i, (model, analysis) in enumerate(plate_models):
            task = PlateTask(item.camera_id, model, analysis.model_versions, None, _masks_of(analysis))
            done = item.done if i == last else None
            self.plate_q.put(item.camera_id, _PlateItem(self._ticket(item.camera_id), task, done), Overflow.HOLD)

    def _plate_dropped(self, item: _PlateItem) -> None:
        """A live camera's plate frame fell off the full plate queue: pass its ticket on, empty."""
        self.sink_q.put(item.task.camera_id, SinkItem(item.ticket, item.task.camera_id, [], item.done))

    def _read_plates(self, items: list[_PlateItem]) -> None:
        try:
            results = self._plates.run([i.task for i in items])
        except Exception:
            self._stats.plate_errors += 1
            log.exception("plate round of %d frames failed", len(items))
            results = [([], {}, []) for _ in items]
        for item, (passes, versions, offences) in zip(items, results, strict=True):
            drafts: list[Draft] = [*offences, *(PlateDraft(p, versions, item.task.masks) for p in passes)]
            self.sink_q.put(item.task.camera_id, SinkItem(item.ticket, item.task.camera_id, drafts, item.done))

    def _write(self, items: list[SinkItem]) -> None:
        for item in items:
            self._sink.take(item)
