"""The worker: cameras -> batched detection -> rules -> durable outbox -> bus, in one process.

Threads, not processes: one decode thread per camera (PyAV releases the GIL
while decoding), one batch thread per model (onnxruntime releases it while
inferring) and one relay thread. Frames are numpy arrays passed by reference
between them, never copied or pickled.

Nothing is lost between stages that matter: an incident is appended to the
fsynced spool before anything else sees it; the relay uploads its snapshot
and only then publishes the event. Frames, on the other hand, may be dropped
under overload (newest frame wins per camera) and every drop is counted.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.config import CameraConfig, KuzetConfig
from core.detections import Detections
from core.frame import Frame
from core.labels import Label
from core.redact import redact_url
from detectors.batcher import BatchScheduler
from detectors.registry import Detector, load_detector
from event_bus.events import CameraStatus, Incident, PlateRead
from event_bus.interfaces import OutRecord, Publisher
from event_bus.relay import Relay
from event_bus.spool import Spool
from event_bus.topics import CAMERA_STATUS, INCIDENTS
from ingest.camera import CameraRunner, StatusChange
from storage.manifests import evidence_upload_hook
from storage.retention import install_retention
from storage.snapshots import SnapshotStore
from worker.camera_pipeline import Outgoing, RuleContext, RuleSet
from worker.clips import ClipRecorder
from worker.factories import make_publisher, make_snapshot_store
from worker.outbox import OutboxGuard

log = logging.getLogger(__name__)

IncidentObserver = Callable[[Incident], None]
StatusObserver = Callable[[CameraStatus], None]
PlateObserver = Callable[[PlateRead], None]
DetectorHook = Callable[[str, Detector], Detector]
"""Wraps each detector once it is loaded (model name, detector) -> detector; used to time inference for metrics."""


@dataclass(frozen=True, slots=True)
class CameraHealth:
    """What metrics and `kuzet status` need about one running camera, read at scrape time."""

    camera_id: str
    state: str  # "starting" until the runner reports, then up / degraded / down
    reason: str
    first_analysed_at: float | None  # time.time() of the first frame whose detection finished
    last_analysed_at: float | None


@dataclass
class _Camera:
    config: CameraConfig
    runner: CameraRunner
    rulesets: dict[str, RuleSet]


class Worker:
    """Runs the cameras of one worker process.

    ``publisher`` and ``store`` default to what the configuration names; tests
    and the demo pass observers to see incidents as they are spooled.
    """

    def __init__(
        self,
        cfg: KuzetConfig,
        *,
        publisher: Publisher | None = None,
        store: SnapshotStore | None = None,
        on_incident: IncidentObserver | None = None,
        on_status: StatusObserver | None = None,
        on_plate: PlateObserver | None = None,
        detector_hook: DetectorHook | None = None,
    ) -> None:
        self.cfg = cfg
        self._detector_hook = detector_hook
        # per-camera wall-clock times of the first and the latest analysed frame (scale-out health, metrics)
        self._first_result_at: dict[str, float] = {}
        self._last_result_at: dict[str, float] = {}
        self.worker_id = cfg.worker.id
        self._on_incident = on_incident
        self._on_status = on_status
        self._on_plate = on_plate
        self._lock = threading.Lock()
        self._cameras: dict[str, _Camera] = {}
        self._store = store or make_snapshot_store(cfg.storage)
        self._publisher = publisher or make_publisher(cfg.bus)
        self.spool = Spool(cfg.bus.spool_path)
        self.outbox = OutboxGuard(self.spool)
        upload = evidence_upload_hook(self._store, self._source_of)  # artifact, then its chained manifest
        self.relay = Relay(self.spool, self._publisher, before_publish=upload)
        self._rule_context = RuleContext(
            rules=cfg.rules,
            tracking=cfg.tracking,
            plates=cfg.plates,
            worker_id=self.worker_id,
            store_kind=self._store.kind,
            store_bucket=self._store.bucket,
            snapshot_ref=self._store.ref_for,
        )
        self.clips: ClipRecorder | None = None
        if cfg.evidence.clips:
            clip_dir = cfg.bus.spool_path.parent / "clips"
            self.clips = ClipRecorder(
                cfg.evidence, clip_dir, self._spool_clip, store_kind=self._store.kind, bucket=self._store.bucket
            )
        self._detectors: dict[str, Detector] = {}
        self._schedulers: dict[str, BatchScheduler] = {}
        self._started = False
        self._stopped = False
        self._flushed = False

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> Worker:
        """Load every model the configured cameras use (a missing model fails here, before any camera
        starts: :class:`detectors.errors.ModelMissingError` names the file), then start the cameras."""
        cameras = [c for c in self.cfg.cameras if c.enabled]
        for name in sorted({d for c in cameras for d in c.detectors}):
            self._scheduler(name)
        self.relay.start()
        install_retention(self._store, self.cfg.evidence.retention_days)
        if self.clips is not None:
            self.clips.start()  # salvages clips a killed predecessor left behind
        self._started = True
        for camera in cameras:
            self.add_camera(camera)
        return self

    def stop(self, flush_timeout_s: float = 10.0) -> bool:
        """Stop cameras, end their open incidents, drain the batchers and flush the outbox.

        Returns True when the outbox was empty at the end; what is left stays in
        the spool and is delivered by the next start. Calling it again is a no-op.
        """
        if self._stopped:
            return self._flushed
        self._stopped = True
        for camera_id in list(self._cameras):
            self.remove_camera(camera_id)
        for scheduler in self._schedulers.values():
            scheduler.stop()
        if self.clips is not None and self._started:
            self.clips.stop(flush_timeout_s)
        if self._started:
            self._flushed = self.relay.flush(flush_timeout_s)
            self.relay.stop()
        self._publisher.close()
        self.spool.close()
        return self._flushed

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- cameras -----------------------------------------------------------------------------------------------

    def add_camera(self, camera: CameraConfig) -> None:
        with self._lock:
            if camera.id in self._cameras:
                raise ValueError(f"camera {camera.id} is already running on this worker")
            rulesets = {name: self._ruleset(camera, name) for name in camera.detectors}
            masks = [m.polygon for m in camera.privacy_masks]
            tap = self.clips.tap(camera.id, masks) if self.clips is not None else None
            runner = CameraRunner(
                camera, self.cfg.ingest, on_frame=self._on_frame, on_status=self._status_changed, packet_tap=tap
            )
            self._cameras[camera.id] = _Camera(camera, runner, rulesets)
        runner.start()

    def remove_camera(self, camera_id: str) -> None:
        with self._lock:
            cam = self._cameras.pop(camera_id, None)
        self._first_result_at.pop(camera_id, None)
        self._last_result_at.pop(camera_id, None)
        if cam is None:
            return
        cam.runner.stop()
        now = datetime.now(UTC)
        for ruleset in cam.rulesets.values():
            for out in ruleset.close(now):
                self._emit(out)
        if self.clips is not None:
            self.clips.remove(camera_id)

    def update_camera(self, camera: CameraConfig) -> None:
        """Apply a changed camera (zones, fps, detectors, URL) by restarting that camera only, not the worker.

        Open incidents of the old definition end (their zones may no longer exist); a camera that is not
        running is simply started.
        """
        self.remove_camera(camera.id)
        self.add_camera(camera)

    def load_models(self, names: list[str] | None = None) -> list[str]:
        """Load models (all configured ones by default) before any camera needs them; readiness waits on this."""
        for name in names if names is not None else [m.name for m in self.cfg.models]:
            self._scheduler(name)
        return self.models_loaded()

    def models_loaded(self) -> list[str]:
        return sorted(self._schedulers)

    def camera_health(self) -> dict[str, CameraHealth]:
        """Per running camera: state as last reported and first / last analysed-frame times (cheap, lock-light)."""
        with self._lock:
            cams = list(self._cameras.items())
        out: dict[str, CameraHealth] = {}
        refused = self.outbox.failing()
        for cid, cam in cams:
            status = cam.runner.status
            refusal = refused.get(cid)
            out[cid] = CameraHealth(
                camera_id=cid,
                state="degraded" if refusal else status.state.value if status is not None else "starting",
                reason=refusal.reason if refusal else status.reason if status is not None else "",
                first_analysed_at=self._first_result_at.get(cid),
                last_analysed_at=self._last_result_at.get(cid),
            )
        return out

    def camera_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._cameras)

    def drain(self, timeout_s: float = 30.0) -> bool:
        """Wait until every frame handed to a batcher has been analysed (end of a file run)."""
        return all(s.wait_idle(timeout_s) for s in self._schedulers.values())

    def camera_running(self, camera_id: str) -> bool:
        """False once a camera has stopped by itself (a file source that reached its end) or was removed."""
        with self._lock:
            cam = self._cameras.get(camera_id)
        return cam is not None and cam.runner.is_alive()

    def camera_stats(self) -> dict[str, Any]:
        with self._lock:
            return {cid: cam.runner.stats() for cid, cam in self._cameras.items()}

    def scheduler_stats(self) -> dict[str, Any]:
        return {name: s.stats() for name, s in self._schedulers.items()}

    def _ruleset(self, camera: CameraConfig, model_name: str) -> RuleSet:
        self._scheduler(model_name)  # loads the model on first use, so its version is known
        labels = {Label.parse(v) for v in self.cfg.model(model_name).labels.values()}
        return RuleSet(camera, model_name, self._detectors[model_name].version, labels, self._rule_context)

    def _scheduler(self, model_name: str) -> BatchScheduler:
        if model_name not in self._schedulers:
            detector = load_detector(self.cfg.model(model_name), self.cfg.model_cache.expanduser())
            if self._detector_hook is not None:
                detector = self._detector_hook(model_name, detector)
            self._detectors[model_name] = detector
            scheduler = BatchScheduler(
                detector,
                max_batch=self.cfg.batch.max_batch,
                max_wait_s=self.cfg.batch.max_wait_ms / 1000.0,
                on_result=functools.partial(self._on_result, model_name),
            )
            scheduler.start()
            self._schedulers[model_name] = scheduler
        return self._schedulers[model_name]

    # -- data path ---------------------------------------------------------------------------------------------

    def _on_frame(self, frame: Frame) -> None:
        cam = self._cameras.get(frame.camera_id)
        if cam is None:
            return
        # A file replayed faster than real time wants every frame: hold its decoder back rather than drop.
        offline = not cam.config.realtime
        for model_name in cam.config.detectors:
            self._schedulers[model_name].submit(frame, wait=offline)

    def _on_result(self, model_name: str, frame: Frame, detections: Detections) -> None:
        cam = self._cameras.get(frame.camera_id)
        if cam is None:  # removed while its frame was in a batch
            return
        now = time.time()
        self._last_result_at[frame.camera_id] = now
        self._first_result_at.setdefault(frame.camera_id, now)
        for out in cam.rulesets[model_name].process(frame, detections):
            self._emit(out)

    def _emit(self, out: Outgoing) -> None:
        event = out.event
        record = OutRecord(out.topic, event.camera_id, event.model_dump_json().encode())
        blob_key = event.snapshot.key if (out.snapshot_jpeg is not None and event.snapshot) else None
        if not self.outbox.append(event.camera_id, record, blob=out.snapshot_jpeg, blob_key=blob_key):
            return  # counted, logged, and the camera shows degraded (worker.outbox)
        self.relay.poke()
        if isinstance(event, Incident):
            if self.clips is not None:
                self.clips.observe(event)
            if self._on_incident is not None:
                self._on_incident(event)
        elif self._on_plate is not None:
            self._on_plate(event)

    def _source_of(self, camera_id: str) -> str:
        """A camera's source URL for chain-of-custody manifests, credentials redacted."""
        cam = self._cameras.get(camera_id)
        return redact_url(cam.config.url) if cam is not None else ""

    def _spool_clip(self, incident: Incident, clip: bytes) -> None:
        """The clip event goes out like a snapshot: its bytes ride in the outbox and are uploaded first."""
        record = OutRecord(INCIDENTS, incident.camera_id, incident.model_dump_json().encode())
        if not self.outbox.append(
            incident.camera_id, record, blob=clip, blob_key=incident.clip.key if incident.clip else None
        ):
            return
        self.relay.poke()
        if self._on_incident is not None:
            self._on_incident(incident)

    def _status_changed(self, change: StatusChange) -> None:
        status = CameraStatus(
            camera_id=change.camera_id,
            state=change.state,
            reason=change.reason,
            input_fps=change.input_fps,
            analysed_fps=change.analysed_fps,
            last_frame_at=change.last_frame_at,
            reconnects=change.reconnects,
            worker_id=self.worker_id,
            at=change.at,
        )
        if not self.outbox.append(
            status.camera_id, OutRecord(CAMERA_STATUS, status.camera_id, status.model_dump_json().encode())
        ):
            return
        self.relay.poke()
        if self._on_status is not None:
            self._on_status(status)
