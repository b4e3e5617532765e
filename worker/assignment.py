"""Camera assignment through Kafka's own group coordination (DESIGN.md, "Kafka").

Workers join one consumer group on the compacted registry topic
``kuzet.cameras.v1``. Each assigned partition is read from its beginning (never
committed: the group is used for membership and assignment only) to build the
worker's camera set, then followed for changes. No scheduler of our own: a dead
worker stops heart-beating, the coordinator expels it after
``session_timeout_ms`` and its partitions go to the survivors.

The Kafka side (the group member, the assignor, following the registry) is
:mod:`event_bus.kafka_group`; this module decides what the worker runs.

Why a custom assignor (:class:`~event_bus.kafka_group.WeightedAssignor`): the built-in ones
balance *partitions*, and with 24 cameras hashed over 64 partitions that leaves
one worker with twice the cameras of another. Ours weighs each partition by the
cameras it holds (the leader keeps a live count of the whole registry in a
:class:`RegistryView`), divides by each member's declared capacity, and keeps
partitions where they are unless moving one improves the balance (sticky, so a
join moves only what it must).

Why cooperative (KIP-429) rebalancing: with the eager protocol every rebalance
revokes every partition from every worker, which would restart every camera and
end every open incident at each join. Cooperatively, a partition that moves is
first revoked from its owner (who stops its cameras in the revocation callback)
and only assigned to its new owner in the follow-up round, so a camera never
runs on two workers at once; cameras that stay put are not touched.

Capacity: a worker runs at most ``capacity`` cameras. Cameras of its partitions
beyond that are not started and are visible (``pending``: a status event with
reason ``unassigned-capacity``, the metric ``kuzet_worker_cameras_pending``) —
never silently dropped.

Invalid records that reach the topic (the CLI refuses them, a buggy producer
may not) are skipped, logged, counted and dead-lettered to ``kuzet.dlq.v1``; the
camera keeps its last valid definition.

Why one module over 400 lines: :class:`CameraAssignment` is one state machine (partitions, running
and pending cameras under one lock, changed by the poll loop and by the rebalance callbacks on the same
thread); splitting it would spread that invariant over modules. The Kafka side and the registry count
are already elsewhere (:mod:`event_bus.kafka_group`, :mod:`worker.registry_view`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from core.camera_policy import CameraPolicy
from core.config import CameraConfig
from core.health import CameraState
from core.redact import redact_text
from event_bus import topics
from event_bus.consume import dead_letter
from event_bus.interfaces import InRecord, OutRecord
from event_bus.kafka_admin import RawRecord
from event_bus.kafka_group import GroupConsumer, WeightedAssignor
from event_bus.records import to_record
from ingest.camera import StatusChange
from worker.camera_status import camera_status
from worker.registry import InvalidCameraRecord, decode_record
from worker.registry_view import RegistryView

log = logging.getLogger(__name__)

DEFAULT_GROUP = "kuzet-workers"
PENDING_REASON = "unassigned-capacity"
"""Reason prefix of the status event of a camera its worker has no room for (``kuzet status`` shows it)."""


# -- the assignment loop --------------------------------------------------------------------------------------------


class WorkerLike(Protocol):
    """What the assignment needs of :class:`worker.runtime.Worker` (a fake in unit tests)."""

    worker_id: str

    def add_camera(self, camera: CameraConfig) -> None: ...

    def remove_camera(self, camera_id: str) -> None: ...

    def update_camera(self, camera: CameraConfig) -> None: ...

    def camera_ids(self) -> list[str]: ...


EventSink = Callable[[str, str, dict[str, Any]], None]
"""(event, camera_id or "", details) for the journal: start, stop, update, pending, invalid, assigned, revoked."""
RecordSink = Callable[[Sequence[OutRecord]], None]
"""Where DLQ and status records go (the worker's durable spool)."""


@dataclass(frozen=True, slots=True)
class AssignmentSettings:
    bootstrap: str
    group_id: str = DEFAULT_GROUP
    capacity: int = 64
    # ~8 s session: a SIGKILLed worker's partitions move within ~10-15 s; heartbeats every 2 s tolerate a GC pause
    session_timeout_ms: int = 8000
    heartbeat_interval_ms: int = 2000
    max_poll_interval_ms: int = 60_000
    poll_timeout_ms: int = 500
    retry_failed_s: float = 15.0
    client_id: str = "kuzet-worker"
    registry_wait_s: float = 15.0


@dataclass
class _Partition:
    cameras: dict[str, CameraConfig] = field(default_factory=dict)
    end_offset: int | None = None
    loaded: bool = False


@dataclass(frozen=True, slots=True)
class AssignmentStats:
    """Read by the metrics collector at scrape time."""

    group: str
    partitions: int
    loading_partitions: int
    cameras_desired: int
    cameras_running: int
    cameras_pending: int
    capacity: int
    invalid_records: int
    start_failures: int
    rebalances: int
    registry_lag: int
    registry_cameras_enabled: int
    registry_cameras_disabled: int
    last_poll_age_s: float
    member_of_group: bool


class CameraAssignment:
    """Runs the group consumer on its own thread and keeps ``worker``'s cameras equal to its partitions' cameras."""

    def __init__(
        self,
        worker: WorkerLike,
        settings: AssignmentSettings,
        *,
        known_detectors: Iterable[str] | None = None,
        sink: RecordSink | None = None,
        on_event: EventSink | None = None,
        view: RegistryView | None = None,
        policy: CameraPolicy | None = None,
    ) -> None:
        self.worker = worker
        self.settings = settings
        self.policy = policy if policy is not None else CameraPolicy()
        self._known = set(known_detectors) if known_detectors is not None else None
        self._sink = sink
        self._on_event = on_event
        self.view = view or RegistryView(settings.bootstrap, client_id=f"{settings.client_id}-view")
        self._own_view = view is None
        self._parts: dict[int, _Partition] = {}
        self._running: dict[str, tuple[CameraConfig, int]] = {}
        self._pending: dict[str, int] = {}
        self._failed: dict[str, float] = {}
        self._reported: set[tuple[int, int]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._group: GroupConsumer | None = None
        self.assignor = WeightedAssignor(self.view.weights, settings.capacity, worker.worker_id, topics.CAMERAS)
        self.invalid_records = 0
        self.start_failures = 0
        self.rebalances = 0
        self._last_poll = time.monotonic()
        self._member = False
        self._lag = 0
        self.error: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> CameraAssignment:
        if self._own_view:
            self.view.start()
        self._thread = threading.Thread(target=self._run, name="camera-assignment", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop our cameras first, then leave the group, so the next owner never overlaps with us."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._own_view:
            self.view.stop()

    # -- observation -------------------------------------------------------------------------------------------

    def stats(self) -> AssignmentStats:
        with self._lock:
            desired = sum(len(p.cameras) for p in self._parts.values() if p.loaded)
            enabled, disabled = self.view.registered()
            return AssignmentStats(
                group=self.settings.group_id,
                partitions=len(self._parts),
                loading_partitions=sum(1 for p in self._parts.values() if not p.loaded),
                cameras_desired=desired,
                cameras_running=len(self._running),
                cameras_pending=len(self._pending),
                capacity=self.settings.capacity,
                invalid_records=self.invalid_records,
                start_failures=self.start_failures,
                rebalances=self.rebalances,
                registry_lag=self._lag,
                registry_cameras_enabled=enabled,
                registry_cameras_disabled=disabled,
                last_poll_age_s=time.monotonic() - self._last_poll,
                member_of_group=self._member,
            )

    def pending(self) -> list[str]:
        with self._lock:
            return sorted(self._pending)

    def partitions(self) -> list[int]:
        with self._lock:
            return sorted(self._parts)

    # -- the loop ----------------------------------------------------------------------------------------------

    def _run(self) -> None:
        if not self.view.wait_loaded(self.settings.registry_wait_s):
            log.warning("registry view not loaded after %.0f s; joining anyway", self.settings.registry_wait_s)
        while not self._stop.is_set():
            try:
                self._consume()
            except Exception as exc:
                self.error = redact_text(f"{type(exc).__name__}: {exc}")[:300]
                log.error("camera assignment failed: %s; stopping our cameras and rejoining", self.error)
                self._release(list(self._parts))
                self._stop.wait(2.0)
        self._release(list(self._parts))

    def _consume(self) -> None:
        s = self.settings
        group = GroupConsumer(
            s.bootstrap,
            topics.CAMERAS,
            s.group_id,
            client_id=s.client_id,
            assignor=self.assignor,
            on_assigned=self._assigned,
            on_revoked=self._revoked,
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            max_poll_interval_ms=s.max_poll_interval_ms,
        )
        self._group = group
        try:
            while not self._stop.is_set():
                records = group.poll(timeout_ms=s.poll_timeout_ms, max_records=2000)
                self._last_poll = time.monotonic()
                for r in records:
                    self._apply(r.partition, r)
                self._check_loaded(group)
                self._reconcile()
                self._lag = self._group_lag(group)
        finally:
            # stop cameras before leaving: the partitions' next owners must not start them while they run here
            self._release(list(self._parts))
            self._member = False
            group.close()
            self._group = None

    def _apply(self, partition: int, r: RawRecord) -> None:
        part = self._parts.get(partition)
        if part is None:
            return
        try:
            entry = decode_record(r.key, r.value, self.policy)
            if entry.camera is not None and self._known is not None:
                missing = [d for d in entry.camera.detectors if d not in self._known]
                if missing:
                    raise InvalidCameraRecord(
                        f"camera {entry.camera_id}: unknown detector(s) {missing}; "
                        f"this worker runs {sorted(self._known)}"
                    )
        except InvalidCameraRecord as exc:
            self._invalid(partition, r, str(exc))
            return
        with self._lock:
            if entry.camera is None or not entry.camera.enabled:
                part.cameras.pop(entry.camera_id, None)
            else:
                part.cameras[entry.camera_id] = entry.camera

    def _invalid(self, partition: int, r: RawRecord, reason: str) -> None:
        if (partition, r.offset) in self._reported:
            return  # re-read after a rebalance: reported once per process
        self._reported.add((partition, r.offset))
        self.invalid_records += 1
        log.warning("skipping invalid camera record at %s/%d@%d: %s", topics.CAMERAS, partition, r.offset, reason)
        self._event("invalid", "", {"partition": partition, "offset": r.offset, "reason": reason})
        if self._sink is not None:
            rec = InRecord(
                topic=topics.CAMERAS,
                partition=partition,
                offset=r.offset,
                key=r.key.decode("utf-8", errors="replace") if r.key is not None else None,
                value=_redacted(bytes(r.value)) if r.value is not None else b"",
                timestamp_ms=r.timestamp_ms,
            )
            try:
                self._sink([dead_letter(rec, reason, consumer=self.settings.group_id)])
            except Exception as exc:
                log.error("could not dead-letter an invalid camera record: %s", redact_text(str(exc)))

    def _group_lag(self, group: GroupConsumer) -> int:
        """Records between our positions and the ends of our partitions (high-water marks the fetcher already has)."""
        lag = 0
        for p, st in list(self._parts.items()):
            high = group.highwater(p)
            if high is None:
                high = st.end_offset
            if high is None:
                continue
            try:
                lag += max(0, high - group.position(p))
            except Exception:  # noqa: S112  # no position yet
                continue
        return lag

    def _check_loaded(self, group: GroupConsumer) -> None:
        loading = [p for p, st in self._parts.items() if not st.loaded]
        if not loading:
            return
        need_end = [p for p in loading if self._parts[p].end_offset is None]
        if need_end:
            for p, end in group.end_offsets(need_end).items():
                if p in self._parts:
                    self._parts[p].end_offset = end
        for p in loading:
            st = self._parts.get(p)
            if st is not None and st.end_offset is not None and group.position(p) >= st.end_offset:
                st.loaded = True

    # -- keeping the worker in step -----------------------------------------------------------------------------

    def _reconcile(self) -> None:
        """Start, update and stop cameras so the worker runs exactly its loaded partitions' cameras (up to capacity)."""
        desired: dict[str, tuple[CameraConfig, int]] = {}
        with self._lock:
            loaded = {p for p, st in self._parts.items() if st.loaded}
            for p in loaded:
                for cid, cam in self._parts[p].cameras.items():
                    desired[cid] = (cam, p)
        for cid, (cam, p) in list(self._running.items()):
            if p in loaded and cid not in desired:
                self._stop_camera(cid, "removed from the registry")
            elif cid in desired and desired[cid][0] != cam:
                self._update_camera(desired[cid][0], desired[cid][1])
        now = time.monotonic()
        new_pending: dict[str, int] = {}
        for cid in sorted(desired):
            if cid in self._running:
                continue
            cam, p = desired[cid]
            if len(self._running) >= self.settings.capacity:
                new_pending[cid] = p
                continue
            if self._failed.get(cid, 0.0) > now:
                continue
            self._start_camera(cam, p)
        self._set_pending(new_pending)

    def _start_camera(self, cam: CameraConfig, partition: int) -> None:
        try:
            self.worker.add_camera(cam)
        except Exception as exc:
            self.start_failures += 1
            self._failed[cam.id] = time.monotonic() + self.settings.retry_failed_s
            log.error("camera %s could not start: %s", cam.id, redact_text(repr(exc)))
            self._event("start_failed", cam.id, {"error": redact_text(repr(exc))[:300]})
            return
        with self._lock:
            self._running[cam.id] = (cam, partition)
        self._failed.pop(cam.id, None)
        self._event("start", cam.id, {"partition": partition, "fps": cam.analysis_fps, "zones": len(cam.zones)})

    def _update_camera(self, cam: CameraConfig, partition: int) -> None:
        try:
            self.worker.update_camera(cam)
        except Exception as exc:
            self.start_failures += 1
            log.error("camera %s could not be updated: %s", cam.id, redact_text(repr(exc)))
            with self._lock:
                self._running.pop(cam.id, None)
            self._failed[cam.id] = time.monotonic() + self.settings.retry_failed_s
            return
        with self._lock:
            self._running[cam.id] = (cam, partition)
        self._event(
            "update", cam.id, {"partition": partition, "fps": cam.analysis_fps, "zones": [z.name for z in cam.zones]}
        )

    def _stop_camera(self, cid: str, why: str) -> None:
        try:
            self.worker.remove_camera(cid)
        except Exception as exc:
            log.error("camera %s did not stop cleanly: %s", cid, redact_text(repr(exc)))
        with self._lock:
            self._running.pop(cid, None)
        self._event("stop", cid, {"why": why})

    def _set_pending(self, pending: dict[str, int]) -> None:
        with self._lock:
            fresh = sorted(set(pending) - set(self._pending))
            self._pending = pending
        if not fresh:
            return
        log.warning(
            "worker %s is full (capacity %d): %d camera(s) not started: %s",
            self.worker.worker_id,
            self.settings.capacity,
            len(fresh),
            ", ".join(fresh[:10]),
        )
        records = []
        for cid in fresh:
            self._event("pending", cid, {"capacity": self.settings.capacity})
            change = StatusChange(
                camera_id=cid,
                state=CameraState.DOWN,
                reason=f"{PENDING_REASON}: worker {self.worker.worker_id} is full ({self.settings.capacity} cameras)",
                input_fps=0.0,
                analysed_fps=0.0,
                last_frame_at=None,
                reconnects=0,
                at=datetime.now(UTC),
            )
            records.append(to_record(camera_status(change, self.worker.worker_id)))
        if self._sink is not None:
            try:
                self._sink(records)
            except Exception as exc:
                log.error("could not report pending cameras: %s", redact_text(str(exc)))

    def _release(self, partitions: Iterable[int]) -> None:
        """Stop the cameras of ``partitions`` (in parallel: revocation must be quick) and forget those partitions."""
        gone = set(partitions)
        with self._lock:
            for p in gone:
                self._parts.pop(p, None)
            victims = [cid for cid, (_c, p) in self._running.items() if p in gone]
            self._pending = {cid: p for cid, p in self._pending.items() if p not in gone}
        if not victims:
            return
        with ThreadPoolExecutor(max_workers=min(16, len(victims)), thread_name_prefix="camera-stop") as pool:
            list(pool.map(lambda cid: self._stop_camera(cid, "partition revoked"), victims))

    def _event(self, kind: str, camera_id: str, details: dict[str, Any]) -> None:
        if self._on_event is not None:
            try:
                self._on_event(kind, camera_id, details)
            except Exception as exc:
                log.warning("journal write failed: %s", exc)

    # -- listener callbacks (on the consumer's thread, inside poll) ---------------------------------------------

    def _assigned(self, partitions: list[int]) -> None:
        self.rebalances += 1
        self._member = True
        with self._lock:
            for p in partitions:
                self._parts[p] = _Partition()
        if partitions and self._group is not None:
            self._group.seek_to_beginning(partitions)  # the camera set is the whole partition, never an offset
        self._event("assigned", "", {"partitions": partitions})

    def _revoked(self, partitions: list[int], lost: bool = False) -> None:
        self.rebalances += 1
        self._release(partitions)
        self._event("lost" if lost else "revoked", "", {"partitions": partitions})


def _redacted(value: bytes) -> bytes:
    """A bad record's value with any URL credentials masked: the DLQ must not become a credential store."""
    try:
        return redact_text(value.decode("utf-8")).encode("utf-8")
    except UnicodeDecodeError:
        return value
