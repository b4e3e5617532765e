"""The whole camera registry as one worker sees it: every valid camera definition, followed live.

Every worker reads every partition of the compacted ``kuzet.cameras.v1``
(no group; 20,000 cameras is about 12 MB read once): the group leader plans
with the full camera set, and each member finds the definitions of the
cameras it is assigned here, whatever partition they hash to. So the number
of workers is not bounded by the registry's partition count.

Invalid records (the CLI refuses them, a buggy producer may not) are handed
to ``on_invalid`` once per (partition, offset) and otherwise skipped: the
camera keeps its last valid definition. The view does not dead-letter them:
every worker reads every record, again after each reconnect, so one group
(:mod:`worker.registry_dead_letters`) writes each one's dead letter, once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterable

from core.camera_policy import CameraPolicy
from core.config import CameraConfig
from core.redact import redact_text
from event_bus import topics
from event_bus.kafka_admin import RawRecord
from event_bus.kafka_group import follow_topic
from worker.registry import InvalidCameraRecord, RegistryEntry, decode_record

log = logging.getLogger(__name__)

InvalidSink = Callable[[RawRecord, str], None]


def validate_record(r: RawRecord, policy: CameraPolicy, known_detectors: Collection[str] | None) -> RegistryEntry:
    """Decode one registry record as this worker would use it; raises :class:`InvalidCameraRecord` saying why not.

    Beyond :func:`~worker.registry.decode_record`, the camera's detectors must be ones this worker runs.
    """
    entry = decode_record(r.key, r.value, policy)
    if entry.camera is not None and known_detectors is not None:
        missing = [d for d in entry.camera.detectors if d not in known_detectors]
        if missing:
            raise InvalidCameraRecord(
                f"camera {entry.camera_id}: unknown detector(s) {missing}; this worker runs {sorted(known_detectors)}"
            )
    return entry


class RegistryView:
    """Follows every registry partition and keeps the valid camera definitions, enabled or not."""

    def __init__(
        self,
        bootstrap: str,
        *,
        client_id: str = "kuzet-registry-view",
        policy: CameraPolicy | None = None,
        known_detectors: Iterable[str] | None = None,
        on_invalid: InvalidSink | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.policy = policy if policy is not None else CameraPolicy()
        self.known_detectors = set(known_detectors) if known_detectors is not None else None
        self.on_invalid = on_invalid
        self._lock = threading.Lock()
        self._cameras: dict[str, tuple[CameraConfig, int]] = {}  # camera id -> (definition, partition)
        self._reported: set[tuple[int, int]] = set()
        self._loaded = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.version = 0  # bumped whenever the set of enabled cameras changes
        self.changes = 0  # bumped by every applied record (definitions may have changed)
        self.lag = 0
        self.partitions = 0
        self.error: str | None = None

    def start(self) -> RegistryView:
        self._thread = threading.Thread(target=self._run, name="registry-view", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def wait_loaded(self, timeout_s: float) -> bool:
        return self._loaded.wait(timeout_s)

    @property
    def loaded(self) -> bool:
        return self._loaded.is_set()

    def enabled_ids(self) -> frozenset[str] | None:
        """Ids of the enabled cameras; None until the first full read (the leader must not plan from half)."""
        if not self._loaded.is_set():
            return None
        with self._lock:
            return frozenset(cid for cid, (cam, _p) in self._cameras.items() if cam.enabled)

    def camera(self, camera_id: str) -> CameraConfig | None:
        """The enabled definition of ``camera_id`` (None: unknown, disabled or removed)."""
        with self._lock:
            entry = self._cameras.get(camera_id)
        return entry[0] if entry is not None and entry[0].enabled else None

    def partition_of(self, camera_id: str) -> int | None:
        with self._lock:
            entry = self._cameras.get(camera_id)
        return entry[1] if entry is not None else None

    def registered(self) -> tuple[int, int]:
        """(enabled, disabled) cameras in the registry."""
        with self._lock:
            enabled = sum(1 for cam, _p in self._cameras.values() if cam.enabled)
            return enabled, len(self._cameras) - enabled

    def apply(self, r: RawRecord) -> None:
        """One registry record: a definition, a tombstone, or an invalid record (reported once, skipped)."""
        try:
            entry = validate_record(r, self.policy, self.known_detectors)
        except InvalidCameraRecord as exc:
            self._invalid(r, str(exc))
            return
        with self._lock:
            before = self._cameras.get(entry.camera_id)
            was = before is not None and before[0].enabled
            if entry.camera is None:
                self._cameras.pop(entry.camera_id, None)
            else:
                self._cameras[entry.camera_id] = (entry.camera, r.partition)
            now = entry.camera is not None and entry.camera.enabled
            if was != now:
                self.version += 1
            self.changes += 1

    def _invalid(self, r: RawRecord, reason: str) -> None:
        if (r.partition, r.offset) in self._reported:
            return  # re-read after a reconnect: reported once per process
        self._reported.add((r.partition, r.offset))
        if self.on_invalid is not None:
            self.on_invalid(r, reason)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except Exception as exc:
                self.error = redact_text(f"{type(exc).__name__}: {exc}")[:300]
                log.warning("registry view: %s; retrying", self.error)
                self._stop.wait(2.0)

    def _follow(self) -> None:
        for batch in follow_topic(self.bootstrap, topics.CAMERAS, client_id=self.client_id, stop=self._stop):
            for r in batch.records:
                self.apply(r)
            self.partitions = batch.partitions
            if batch.caught_up and not self._loaded.is_set():
                self._loaded.set()
            self.lag = batch.lag
