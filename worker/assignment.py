"""Camera assignment through Kafka's own group coordination (DESIGN.md, "Kafka"), camera by camera.

Workers join one consumer group. Every worker reads the *whole* compacted
registry ``kuzet.cameras.v1`` (:class:`~worker.registry_view.RegistryView`);
the group is used for membership, liveness and fencing only: the leader's
assignor (:class:`~event_bus.kafka_group.CameraAssignor`) hands out camera
ids, in proportion to each member's declared capacity, in the assignment's
user data. So the number of workers is not capped by the registry's
partitions, and the plan is recomputed when cameras are added or removed
(the leader rejoins when its view of the camera set differs from what it last
planned), not only when members come and go.

Never two owners, by three rules:

* cooperative (KIP-429) at camera level: a camera that moves is first taken
  from its owner (who stops it and rejoins, no longer reporting it) and given
  to its new owner only in a later generation, once no member reports
  running it; cameras that stay put are not touched;
* self-fencing: a member whose last acknowledged heartbeat (or join) is older
  than the session timeout minus a margin stops all its cameras and rejoins:
  the coordinator may already have expelled it and handed its cameras on
  (a paused or partitioned process);
* every camera status a worker sends carries the generation of the
  assignment it runs under (:meth:`CameraAssignment.status_generation`), and a
  fenced worker sends none, so the status stream shows who owned what, when.

Capacity: the leader balances by capacity, so a member gets more than its
capacity only when the whole group is full; cameras beyond it are not started
and are visible (``pending``: a status with reason ``unassigned-capacity``,
the metric ``kuzet_worker_cameras_pending``), never silently dropped.

Invalid registry records are skipped, logged and counted by the view's
``on_invalid``; the camera keeps its last valid definition. Their dead letters
are written once per record for the whole group, by the group's
dead-lettering member this worker also runs
(:mod:`worker.registry_dead_letters`), not once per worker and restart.

Why one module over 400 lines: :class:`CameraAssignment` is one state machine (assignment, running,
pending and fenced state under one lock, changed by the poll loop and read by the status path); splitting
it would spread that invariant over modules. The Kafka side and the registry view are elsewhere
(:mod:`event_bus.kafka_group`, :mod:`worker.registry_view`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from core.camera_policy import CameraPolicy
from core.config import CameraConfig
from core.health import CameraState
from core.redact import redact_text
from event_bus import topics
from event_bus.interfaces import OutRecord
from event_bus.kafka_admin import RawRecord
from event_bus.kafka_dead_letters import ExactlyOnceDeadLetters
from event_bus.kafka_group import Assigned, CameraAssignor, GroupConsumer
from event_bus.records import to_record
from ingest.camera import StatusChange
from worker.camera_status import camera_status
from worker.registry_dead_letters import registry_dead_letters
from worker.registry_view import RegistryView

log = logging.getLogger(__name__)

DEFAULT_GROUP = "kuzet-workers"
PENDING_REASON = "unassigned-capacity"
"""Reason prefix of the status event of a camera its worker has no room for (``kuzet status`` shows it)."""


class WorkerLike(Protocol):
    """What the assignment needs of :class:`worker.runtime.Worker` (a fake in unit tests)."""

    worker_id: str

    def add_camera(self, camera: CameraConfig) -> None: ...

    def remove_camera(self, camera_id: str) -> None: ...

    def update_camera(self, camera: CameraConfig) -> None: ...

    def camera_ids(self) -> list[str]: ...


EventSink = Callable[[str, str, dict[str, Any]], None]
"""(event, camera_id or "", details) for the journal: start, stop, update, pending, invalid, assigned, fenced."""
RecordSink = Callable[[Sequence[OutRecord]], None]
"""Where status records go (the worker's durable spool)."""


@dataclass(frozen=True, slots=True)
class AssignmentSettings:
    bootstrap: str
    group_id: str = DEFAULT_GROUP
    capacity: int = 64
    # ~8 s session: a SIGKILLed worker's cameras move within ~10-15 s; heartbeats every 2 s tolerate a GC pause
    session_timeout_ms: int = 8000
    heartbeat_interval_ms: int = 2000
    max_poll_interval_ms: int = 60_000
    poll_timeout_ms: int = 500
    retry_failed_s: float = 15.0
    client_id: str = "kuzet-worker"
    registry_wait_s: float = 15.0
    rejoin_quiet_s: float = 1.0  # the leader replans this long after the camera set last changed (batches adds)

    @property
    def fence_after_s(self) -> float:
        """Heartbeat age past which we stop everything: the session timeout less a heartbeat (at least 1 s)."""
        session = self.session_timeout_ms / 1000
        return max(0.5, session - max(1.0, self.heartbeat_interval_ms / 1000))


@dataclass(frozen=True, slots=True)
class AssignmentStats:
    """Read by the metrics collector at scrape time."""

    group: str
    generation: int | None
    cameras_assigned: int
    cameras_running: int
    cameras_pending: int
    capacity: int
    invalid_records: int
    start_failures: int
    rebalances: int
    fenced: int
    registry_lag: int
    registry_loaded: bool
    registry_cameras_enabled: int
    registry_cameras_disabled: int
    last_poll_age_s: float
    member_of_group: bool
    dead_letters_written: int = 0
    """Dead letters this worker's member of the dead-lettering group wrote (each invalid record once per group)."""
    dead_letter_member_ok: bool = True
    """False while that member retries after an error (broker, ACL, fencing): invalid records wait for it."""


class CameraAssignment:
    """Runs the group member on its own thread and keeps ``worker``'s cameras equal to its assigned cameras."""

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
        dead_letters: ExactlyOnceDeadLetters | None = None,
    ) -> None:
        self.worker = worker
        self.settings = settings
        self._sink = sink
        self._on_event = on_event
        self.view = view or RegistryView(
            settings.bootstrap,
            client_id=f"{settings.client_id}-view",
            policy=policy,
            known_detectors=known_detectors,
        )
        self.view.on_invalid = self._invalid
        self._own_view = view is None
        self.dead_letters = dead_letters or registry_dead_letters(
            settings.bootstrap,
            settings.group_id,
            worker.worker_id,
            self.view.policy,
            self.view.known_detectors,
            client_id=settings.client_id,
        )
        self._grant: Assigned | None = None
        self._running: dict[str, CameraConfig] = {}
        self._pending: set[str] = set()
        self._failed: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._group: GroupConsumer | None = None
        self._seen: tuple[object, ...] = ()
        self._set_changed_at = 0.0
        self._taken = False  # the last assignment took cameras from us: rejoin once they are stopped
        self._fresh_in_rebalance = 0.0  # monotonic: last poll that saw a rebalance we entered as a fresh member
        self._set_version = -1
        self.assignor = CameraAssignor(
            self.view.enabled_ids, self._owned_for_join, self._assigned, settings.capacity, worker.worker_id
        )
        self.invalid_records = 0
        self.start_failures = 0
        self.rebalances = 0
        self.fenced = 0
        self._last_poll = time.monotonic()
        self.error: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> CameraAssignment:
        if self._own_view:
            self.view.start()
        self.dead_letters.start()
        self._thread = threading.Thread(target=self._run, name="camera-assignment", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop our cameras first, then leave the group, so the next owner never overlaps with us."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.dead_letters.stop()
        if self._own_view:
            self.view.stop()

    # -- observation -------------------------------------------------------------------------------------------

    def alive(self) -> bool:
        """Both threads (the group member and the dead-lettering member) are running."""
        return self._thread is not None and self._thread.is_alive() and self.dead_letters.alive()

    def stats(self) -> AssignmentStats:
        enabled, disabled = self.view.registered()
        with self._lock:
            grant = self._grant
            return AssignmentStats(
                group=self.settings.group_id,
                generation=grant.generation if grant is not None else None,
                cameras_assigned=len(grant.cameras) if grant is not None else 0,
                cameras_running=len(self._running),
                cameras_pending=len(self._pending),
                capacity=self.settings.capacity,
                invalid_records=self.invalid_records,
                start_failures=self.start_failures,
                rebalances=self.rebalances,
                fenced=self.fenced,
                registry_lag=self.view.lag,
                registry_loaded=self.view.loaded,
                registry_cameras_enabled=enabled,
                registry_cameras_disabled=disabled,
                last_poll_age_s=time.monotonic() - self._last_poll,
                member_of_group=grant is not None,
                dead_letters_written=self.dead_letters.dead_lettered,
                dead_letter_member_ok=self.dead_letters.error is None,
            )

    def pending(self) -> list[str]:
        with self._lock:
            return sorted(self._pending)

    def owned(self) -> set[str]:
        """What we report to the leader at each join: cameras we run or were given (and may start)."""
        with self._lock:
            return set(self._running) | (set(self._grant.cameras) if self._grant is not None else set())

    def _owned_for_join(self) -> set[str]:
        """:meth:`owned`, after fencing if our membership may have lapsed (a resumed process rejoins empty)."""
        group = self._group
        if group is not None:
            self._fence(group)
        return self.owned()

    def status_generation(self) -> int | None:
        """The generation our camera statuses carry; None when we must not speak for any camera (fenced)."""
        with self._lock:
            grant, group = self._grant, self._group
        if grant is None or group is None or self._stale(group, grant):
            return None
        return grant.generation

    def _stale(self, group: GroupConsumer, grant: Assigned) -> bool:
        """Our membership may have lapsed: the coordinator expelled us, or nothing acknowledged us for too long.

        kafka-python sends no heartbeats during a join / sync, so time spent in a rebalance we entered as a
        fresh member counts as acknowledged (the coordinator does not expire members that are rejoining).
        """
        if group.expelled():
            return True
        return group.heartbeat_age_s(max(grant.at, self._fresh_in_rebalance)) > self.settings.fence_after_s

    # -- the loop ----------------------------------------------------------------------------------------------

    def _run(self) -> None:
        if not self.view.wait_loaded(self.settings.registry_wait_s):
            log.warning("registry view not loaded after %.0f s; joining anyway", self.settings.registry_wait_s)
        while not self._stop.is_set():
            try:
                self._member()
            except Exception as exc:
                self.error = redact_text(f"{type(exc).__name__}: {exc}")[:300]
                log.error("camera assignment failed: %s; stopping our cameras and rejoining", self.error)
                self._drop_all("assignment failed")
                self._stop.wait(2.0)
        self._drop_all("worker stopping")

    def _member(self) -> None:
        s = self.settings
        group = GroupConsumer(
            s.bootstrap,
            topics.CAMERAS,
            s.group_id,
            client_id=s.client_id,
            assignor=self.assignor,
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            max_poll_interval_ms=s.max_poll_interval_ms,
        )
        with self._lock:
            self._group = group
        try:
            while not self._stop.is_set():
                group.poll(timeout_ms=s.poll_timeout_ms)
                self._last_poll = time.monotonic()
                with self._lock:
                    grant = self._grant
                if grant is not None and group.rebalancing() and not self._stale(group, grant):
                    self._fresh_in_rebalance = self._last_poll
                if self._fence(group):
                    continue
                if self._reconcile():
                    group.request_rejoin()  # cameras we gave up are free now: the leader can place them
                if self._camera_set_changed(group):
                    group.request_rejoin()
        finally:
            # stop cameras before leaving: their next owners must not start them while they run here
            self._drop_all("leaving the group")
            with self._lock:
                self._group = None
            group.close()

    def _fence(self, group: GroupConsumer) -> bool:
        """Stop everything when our membership may have lapsed (no heartbeat acknowledged for too long)."""
        with self._lock:
            grant = self._grant
        if grant is None or not self._stale(group, grant):
            return False
        self.fenced += 1
        log.warning(
            "worker %s: no heartbeat acknowledged for %.1f s (generation %d): stopping its %d camera(s) and rejoining",
            self.worker.worker_id,
            group.heartbeat_age_s(grant.at),
            grant.generation,
            len(self._running),
        )
        self._event("fenced", "", {"generation": grant.generation})
        self._drop_all("fenced: membership may have lapsed")
        group.request_rejoin()
        return True

    def _camera_set_changed(self, group: GroupConsumer) -> bool:
        """As leader: the registry's camera set differs from the last plan and has been quiet a moment."""
        if not group.is_leader() or not self.view.loaded:
            return False
        now = time.monotonic()
        if self.view.version != self._set_version:
            self._set_version = self.view.version
            self._set_changed_at = now
        if now - self._set_changed_at < self.settings.rejoin_quiet_s:
            return False
        if self.assignor.planned_for is not None and self.assignor.planned_for == self.view.enabled_ids():
            return False
        self._set_changed_at = now  # one rejoin request per quiet period
        log.info("registry camera set changed since the last plan: rebalancing")
        return True

    # -- keeping the worker in step -----------------------------------------------------------------------------

    def _reconcile(self) -> bool:
        """Start, update and stop cameras so the worker runs exactly its assigned cameras (up to capacity).

        Returns True when it stopped a camera that was taken from us (the leader waits for that to place it).
        """
        with self._lock:
            grant = self._grant
        now = time.monotonic()
        key = (grant, self.view.changes, bool(self._pending or self._failed) and int(now))
        if key == self._seen:
            return False
        self._seen = key
        assigned = grant.cameras if grant is not None else frozenset()
        released, self._taken = self._taken, False  # taken pending cameras count too: nobody runs them
        for cid, cam in list(self._running.items()):
            current = self.view.camera(cid)
            if cid not in assigned:
                self._stop_camera(cid, "assigned elsewhere")
                released = True
            elif current is None:
                self._stop_camera(cid, "removed from the registry")
            elif current != cam:
                self._update_camera(current)
        pending: set[str] = set()
        for cid in sorted(assigned):
            if cid in self._running:
                continue
            wanted = self.view.camera(cid)
            if wanted is None:
                continue
            if len(self._running) >= self.settings.capacity:
                pending.add(cid)
                continue
            if self._failed.get(cid, 0.0) > now:
                continue
            self._start_camera(wanted, grant.generation if grant is not None else 0)
        self._set_pending(pending)
        return released

    def _start_camera(self, cam: CameraConfig, generation: int) -> None:
        try:
            self.worker.add_camera(cam)
        except Exception as exc:
            self.start_failures += 1
            self._failed[cam.id] = time.monotonic() + self.settings.retry_failed_s
            log.error("camera %s could not start: %s", cam.id, redact_text(repr(exc)))
            self._event("start_failed", cam.id, {"error": redact_text(repr(exc))[:300]})
            return
        with self._lock:
            self._running[cam.id] = cam
        self._failed.pop(cam.id, None)
        self._event("start", cam.id, {"generation": generation, "fps": cam.analysis_fps, "zones": len(cam.zones)})

    def _update_camera(self, cam: CameraConfig) -> None:
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
            self._running[cam.id] = cam
        self._event("update", cam.id, {"fps": cam.analysis_fps, "zones": [z.name for z in cam.zones]})

    def _stop_camera(self, cid: str, why: str) -> None:
        try:
            self.worker.remove_camera(cid)
        except Exception as exc:
            log.error("camera %s did not stop cleanly: %s", cid, redact_text(repr(exc)))
        with self._lock:
            self._running.pop(cid, None)
        self._event("stop", cid, {"why": why})

    def _drop_all(self, why: str) -> None:
        """Stop every camera (in parallel: fencing and leaving must be quick) and forget the assignment."""
        with self._lock:
            self._grant = None
            self._pending = set()
            victims = list(self._running)
        self._seen = ()
        if not victims:
            return
        with ThreadPoolExecutor(max_workers=min(16, len(victims)), thread_name_prefix="camera-stop") as pool:
            list(pool.map(lambda cid: self._stop_camera(cid, why), victims))

    def _set_pending(self, pending: set[str]) -> None:
        with self._lock:
            fresh = sorted(pending - self._pending)
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
        generation = self.status_generation()
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
            status = camera_status(change, self.worker.worker_id)
            records.append(to_record(status.model_copy(update={"generation": generation})))
        if self._sink is not None:
            try:
                self._sink(records)
            except Exception as exc:
                log.error("could not report pending cameras: %s", redact_text(str(exc)))

    def _invalid(self, r: RawRecord, reason: str) -> None:
        """Count and log a record this worker cannot use (its dead letter is the dead-lettering group's job)."""
        self.invalid_records += 1
        log.warning("skipping invalid camera record at %s/%d@%d: %s", topics.CAMERAS, r.partition, r.offset, reason)
        self._event("invalid", "", {"partition": r.partition, "offset": r.offset, "reason": reason})

    def _event(self, kind: str, camera_id: str, details: dict[str, Any]) -> None:
        if self._on_event is not None:
            try:
                self._on_event(kind, camera_id, details)
            except Exception as exc:
                log.warning("journal write failed: %s", exc)

    # -- the assignor's callback (on the consumer's thread, inside poll) ----------------------------------------

    def _assigned(self, grant: Assigned) -> None:
        """A new generation's share: taken cameras stop in the next reconcile, still reported as ours until then."""
        self.rebalances += 1
        with self._lock:
            before = self._grant.cameras if self._grant is not None else frozenset()
            self._grant = grant
            self._taken = bool(before - grant.cameras)
        self._event(
            "assigned",
            "",
            {
                "generation": grant.generation,
                "cameras": len(grant.cameras),
                "added": len(grant.cameras - before),
                "taken": len(before - grant.cameras),
            },
        )
