"""The worker: cameras -> staged pipeline -> durable outbox -> bus, in one process.

The stages and the queues between them (decode, inference per model,
analysis, plate reading, sink) are declared in :mod:`worker.pipeline`; this
module runs cameras, loads models and wires the sink to the spool and relay.

Nothing is lost between stages that matter: an incident is appended to the
fsynced spool before anything else sees it; the relay uploads its snapshot
and only then publishes the event. Frames, on the other hand, may be dropped
under overload (newest frame wins per camera) and every drop is counted.

Why one module over 400 lines: :class:`Worker` is the one place the parts meet (cameras, real or simulated,
models, pipeline, outbox, status gate); its methods are short delegations to the modules named above.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.config import SIMULATION_REFUSED, CameraConfig, KuzetConfig
from core.frame import Frame
from core.health import CameraState
from core.labels import Label
from core.redact import redact_url
from core.sim_url import is_sim_url
from detectors.per_camera import CameraTuning, PerCameraDetector, tuning_from_config
from detectors.registry import Detector, load_detector
from event_bus.events import CameraStatus, Incident, LineCount, PlateRead
from event_bus.interfaces import Publisher
from event_bus.records import to_record
from event_bus.relay import Relay
from event_bus.spool import Spool
from event_bus.transport import open_publisher
from ingest.camera import CameraRunner, StatusChange
from ingest.sim import SimCamera, SimDriver
from plate_reader.pipeline import PlateOcr
from plate_reader.reader import PlateReader, PlateReaderConfig
from storage.manifests import evidence_upload_hook
from storage.retention import install_retention
from storage.snapshot_stores import open_snapshot_store
from storage.snapshots import SnapshotStore
from worker.alerting import gate_factory
from worker.analysis import AnalysisSettings, CameraAnalysis
from worker.analytics import AnalyticsStats
from worker.camera_status import camera_status
from worker.clips import ClipRecorder
from worker.events import EventBuilder, Outgoing
from worker.heartbeat import StatusHeartbeat
from worker.live import LiveServer
from worker.outbox import OutboxGuard
from worker.pipeline import Pipeline, PipelineStats
from worker.plate_stage import PlateStage

log = logging.getLogger(__name__)

IncidentObserver = Callable[[Incident], None]
StatusObserver = Callable[[CameraStatus], None]
StatusGate = Callable[[], int | None]
"""The group generation statuses go out under, or None: send none (a fenced scale-out worker, worker.assignment)."""
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
    """One run of a camera on this worker, from add_camera to remove_camera (a restart is a new run)."""

    config: CameraConfig
    runner: CameraRunner | SimCamera  # sim:// cameras: no decoder, no pipeline (ingest.sim)
    tuning: dict[str, CameraTuning | None] = field(default_factory=dict)  # per model: tiling, threshold, min box
    started_at: float = field(default_factory=time.time)  # wall clock; frames captured before are an older run's
    first_analysed_at: float | None = None  # time.time() of this run's first frame out of inference
    last_analysed_at: float | None = None


def bus_target(cfg: KuzetConfig) -> str:
    """Where the outbox delivers, as an operator finds it in the configuration (named in relay warnings)."""
    if cfg.bus.kind == "kafka":
        return f"Kafka at {cfg.bus.kafka.bootstrap_servers} (setting bus.kafka.bootstrap_servers)"
    return f"the local bus {cfg.bus.local_path} (setting bus.local_path)"


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
        self.worker_id = cfg.worker.id
        self._on_incident = on_incident
        self._on_status = on_status
        self._on_plate = on_plate
        self._lock = threading.Lock()
        # held from an event's spool append through its observers (sink and clip finisher threads), so the
        # order observers (the CLI journal) see is the spool's, which is the order the relay publishes
        self._spool_order = threading.Lock()
        self._cameras: dict[str, _Camera] = {}
        self._store = store or open_snapshot_store(cfg.storage)
        self._publisher = publisher or open_publisher(cfg.bus)
        self.spool = Spool(cfg.bus.spool_path)
        self.outbox = OutboxGuard(self.spool)
        upload = evidence_upload_hook(self._store, self._source_of)  # artifact, then its chained manifest
        self.relay = Relay(self.spool, self._publisher, before_publish=upload, target=bus_target(cfg))
        self.analytics = AnalyticsStats()
        self._analysis_settings = AnalysisSettings(
            rules=cfg.rules, tracking=cfg.tracking, worker_id=self.worker_id, analytics=self.analytics
        )
        self.clips: ClipRecorder | None = None
        self.live: LiveServer | None = None  # live view from the clip rings (evidence.live_port)
        if cfg.evidence.clips:
            clip_dir = cfg.bus.spool_path.parent / "clips"
            self.clips = ClipRecorder(
                cfg.evidence, clip_dir, self._spool_clip, store_kind=self._store.kind, bucket=self._store.bucket
            )
        self._alert_gate = gate_factory(cfg.rules)
        self._detectors: dict[str, Detector] = {}
        self._pipeline = Pipeline(
            cfg.batch,
            PlateStage(self._plate_ocr, self._plate_reader),
            EventBuilder(self.worker_id, self._store.ref_for),
            self._emit,
            on_inferred=self._analysed,
        )
        self._heartbeat: StatusHeartbeat | None = None
        self._sim = SimDriver()  # its thread starts with the first sim:// camera
        self.status_gate: StatusGate | None = None
        self.left_in_outbox = 0  # events still in the spool after stop (delivered by the next start)
        self._started = False
        self._stopped = False
        self._flushed = False

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> Worker:
        """Load every model the configured cameras use (a missing model fails here, before any camera
        starts: :class:`detectors.errors.ModelMissingError` names the file), then start the cameras."""
        cameras = [c for c in self.cfg.cameras if c.enabled]
        for name in sorted({d for c in cameras for d in c.detectors}):
            self._model(name)
        self.relay.start()
        install_retention(self._store, self.cfg.evidence.retention_days)
        self.outbox.start()
        if self.clips is not None:
            self.clips.start()  # salvages clips a killed predecessor left behind
            if self.cfg.evidence.live_port is not None:
                self.live = LiveServer(self.clips.camera, host=self.cfg.evidence.live_host,
                                       port=self.cfg.evidence.live_port).start()  # fmt: skip
        self._started = True
        for camera in cameras:
            self.add_camera(camera)
        self._heartbeat = StatusHeartbeat(self, self.cfg.worker.status_interval_s, self._publish_statuses).start()
        return self

    def stop(self, flush_timeout_s: float = 10.0) -> bool:
        """Stop cameras, end their open incidents, drain the batchers and flush the outbox.

        Returns True when the outbox was empty at the end; what is left stays in
        the spool and is delivered by the next start. Calling it again is a no-op.
        """
        if self._stopped:
            return self._flushed
        self._stopped = True
        if self._heartbeat is not None:  # the board shows these cameras down at once, not stale later
            self._heartbeat.stop()
            self._publish_statuses(self._heartbeat.beat(state=CameraState.DOWN, reason="worker stopped"))
        self._remove_cameras(list(self._cameras))
        self._sim.stop()
        self._pipeline.stop()
        if self.clips is not None and self._started:
            self.clips.stop(flush_timeout_s)
        if self.live is not None:
            self.live.stop()
        self.outbox.stop()  # waiting events into the spool first, so the flush below carries them
        relay_stopped = True
        if self._started:
            # A broker that is failing now will not take the backlog in the next seconds: stop promptly,
            # the spool keeps every event for the next start.
            failing = self.relay.stats().consecutive_failures > 0
            self._flushed = self.relay.flush(min(flush_timeout_s, 1.0) if failing else flush_timeout_s)
            relay_stopped = self.relay.stop(timeout_s=1.0 if failing else 10.0)
        if relay_stopped:  # else the relay is blocked inside the publisher, which close() would wait for
            self._publisher.close()
        self.left_in_outbox = self.spool.depth()
        self.spool.close()
        return self._flushed

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- cameras -----------------------------------------------------------------------------------------------

    def add_camera(self, camera: CameraConfig) -> None:
        if is_sim_url(camera.url):
            self._add_sim_camera(camera)
            return
        with self._lock:
            if camera.id in self._cameras:
                raise ValueError(f"camera {camera.id} is already running on this worker")
            analyses = {name: self._analysis(camera, name) for name in camera.detectors}
            masks = [m.polygon for m in camera.privacy_masks]
            tap = self.clips.tap(camera.id, masks) if self.clips is not None else None
            runner = CameraRunner(
                camera, self.cfg.ingest, on_frame=self._on_frame, on_status=self._status_changed, packet_tap=tap
            )
            tuning = {name: tuning_from_config(camera.detection.get(name)) for name in camera.detectors}
            self._cameras[camera.id] = _Camera(camera, runner, tuning)
            self._pipeline.add_camera(camera.id, analyses, realtime=camera.realtime)
        runner.start()

    def remove_camera(self, camera_id: str) -> None:
        self._remove_cameras([camera_id])

    def _remove_cameras(self, camera_ids: list[str]) -> None:
        """Stop the cameras' decoders, then end them in the pipeline together (one deadline for all)."""
        with self._lock:
            cams = [c for c in (self._cameras.pop(i, None) for i in camera_ids) if c is not None]
        for cam in cams:
            cam.runner.stop()
        piped = [cam.config.id for cam in cams if not isinstance(cam.runner, SimCamera)]  # sim: never in it
        for camera_id in self._pipeline.remove_cameras(piped, datetime.now(UTC)):
            log.warning("camera %s: its last events were not written in time; they follow", camera_id)
        if self.clips is not None:
            for camera_id in piped:
                self.clips.remove(camera_id)

    def _add_sim_camera(self, camera: CameraConfig) -> None:
        """A simulated camera: status changes on its schedule, no frames; refused unless ingest.simulation."""
        if not self.cfg.ingest.simulation:
            raise ValueError(f"camera {camera.id}: {SIMULATION_REFUSED}")
        runner = self._sim.camera(camera, self._status_changed)
        with self._lock:
            if camera.id in self._cameras:
                raise ValueError(f"camera {camera.id} is already running on this worker")
            self._cameras[camera.id] = _Camera(camera, runner)
        runner.start()

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
            self._model(name)
        return self.models_loaded()

    def models_loaded(self) -> list[str]:
        return self._pipeline.models()

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
                first_analysed_at=cam.first_analysed_at,
                last_analysed_at=cam.last_analysed_at,
            )
        return out

    def camera_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._cameras)

    def drain(self, timeout_s: float = 30.0) -> bool:
        """Wait until every frame handed to a batcher has gone through every stage (end of a file run)."""
        return self._pipeline.wait_idle(timeout_s)

    def camera_running(self, camera_id: str) -> bool:
        """False once a camera has stopped by itself (a file source that reached its end) or was removed."""
        with self._lock:
            cam = self._cameras.get(camera_id)
        return cam is not None and cam.runner.is_alive()

    def camera_stats(self) -> dict[str, Any]:
        with self._lock:
            return {cid: cam.runner.stats() for cid, cam in self._cameras.items()}

    def scheduler_stats(self) -> dict[str, Any]:
        return dict(self._pipeline.scheduler_stats())

    def pipeline_stats(self) -> PipelineStats:
        """Queue depths, drops per camera and counters of the stages after inference."""
        return self._pipeline.stats()

    def _analysis(self, camera: CameraConfig, model_name: str) -> CameraAnalysis:
        self._model(model_name)  # loads the model on first use, so its version is known
        labels = {Label.parse(v) for v in self.cfg.model(model_name).labels.values()}
        version = self._detectors[model_name].version
        return CameraAnalysis(camera, model_name, version, labels, self._analysis_settings, self._alert_gate(camera))

    def _model(self, model_name: str) -> None:
        if self._pipeline.has_model(model_name):
            return
        detector = load_detector(self.cfg.model(model_name), self.cfg.model_cache.expanduser())
        if self._detector_hook is not None:
            detector = self._detector_hook(model_name, detector)
        self._detectors[model_name] = detector
        self._pipeline.add_model(model_name, PerCameraDetector(detector, functools.partial(self._tuning, model_name)))

    def _plate_ocr(self) -> PlateOcr:
        from plate_reader.ocr import create_recognizer

        return PlateOcr(create_recognizer(self.cfg.plates.ocr_backend))

    def _plate_reader(self, camera_id: str, model: str, versions: dict[str, str], ocr: PlateOcr) -> PlateReader:
        p = self.cfg.plates
        config = PlateReaderConfig(
            ocr_backend=p.ocr_backend,
            candidate_below=p.candidate_below,
            min_read_confidence=p.min_read_confidence,
            end_after_s=p.end_after_s,
        )
        return PlateReader(camera_id, config, ocr=ocr, worker_id=self.worker_id, model_versions=versions)

    def _tuning(self, model_name: str, camera_id: str) -> CameraTuning | None:
        cam = self._cameras.get(camera_id)
        return cam.tuning.get(model_name) if cam is not None else None

    # -- data path ---------------------------------------------------------------------------------------------

    def _on_frame(self, frame: Frame) -> None:
        cam = self._cameras.get(frame.camera_id)
        if cam is None:
            return
        # A file replayed faster than real time wants every frame: hold its decoder back rather than drop.
        self._pipeline.submit(frame, cam.config.detectors, wait=not cam.config.realtime)

    def _analysed(self, frame: Frame) -> None:
        """A frame came out of inference: note the time (health: first / last analysed) on its camera's run.

        Only on the run that captured it: a frame still in inference when its camera was removed, or restarted
        (an update, or a camera that left this worker and came back), belongs to the run before. Counting it
        gave the next run a first-frame time from before that run started (the scale-out journal's
        ``first_frame``, 39 s old, failed the SIGKILL failover test) and a last-frame age that hid a camera
        that never analysed a frame on this run.
        """
        cam = self._cameras.get(frame.camera_id)
        if cam is None or frame.captured_at.timestamp() < cam.started_at:
            return
        now = time.time()
        cam.last_analysed_at = now
        if cam.first_analysed_at is None:
            cam.first_analysed_at = now

    def _emit(self, out: Outgoing) -> None:
        """The sink's write: spool append (fsynced), then the relay and the observers."""
        event = out.event
        record = to_record(event)
        snapshot = None if isinstance(event, LineCount) else event.snapshot
        blob_key = snapshot.key if (out.snapshot_jpeg is not None and snapshot) else None
        if isinstance(event, Incident) and self.clips is not None:
            self.clips.observe(event)  # only queues: the clip event is spooled later by the clip finisher
        # Append and observer under one lock (the clip finisher appends too): observers see spool order.
        with self._spool_order:
            # stored, or waiting in memory while the disk is full (counted, camera degraded: worker.outbox)
            self.outbox.append(event.camera_id, record, blob=out.snapshot_jpeg, blob_key=blob_key)
            self.relay.poke()
            if isinstance(event, Incident):
                if self._on_incident is not None:
                    self._on_incident(event)
            elif isinstance(event, PlateRead) and self._on_plate is not None:
                self._on_plate(event)

    def _source_of(self, camera_id: str) -> str:
        """A camera's source URL for chain-of-custody manifests, credentials redacted."""
        cam = self._cameras.get(camera_id)
        return redact_url(cam.config.url) if cam is not None else ""

    def _spool_clip(self, incident: Incident, clip: bytes) -> None:
        """The clip event goes out like a snapshot: its bytes ride in the outbox and are uploaded first."""
        record = to_record(incident)
        with self._spool_order:  # see _emit: the sink thread appends the camera's other events
            key = incident.clip.key if incident.clip else None
            self.outbox.append(incident.camera_id, record, blob=clip, blob_key=key)
            self.relay.poke()
            if self._on_incident is not None:
                self._on_incident(incident)

    def _status_changed(self, change: StatusChange) -> None:
        self._publish_statuses([camera_status(change, self.worker_id)])

    def _publish_statuses(self, statuses: list[CameraStatus]) -> None:
        """Status changes and heartbeats take the same path as incidents: the outbox first, then the bus."""
        if self.status_gate is not None and statuses:
            generation = self.status_gate()
            if generation is None:
                return  # fenced: another worker may own these cameras now, so say nothing about them
            statuses = [s.model_copy(update={"generation": generation}) for s in statuses]
        for s in statuses:
            self.outbox.append(s.camera_id, to_record(s))  # False: held in its backlog, not lost
        self.relay.poke()
        if self._on_status is not None:
            for status in statuses:
                self._on_status(status)
