"""A live count of the whole camera registry, for the group leader's assignor.

Every worker runs one: whichever becomes leader needs the camera counts of
partitions it does not own, to balance cameras rather than partitions.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from core.redact import redact_text
from event_bus import topics
from event_bus.kafka_group import follow_topic
from worker.registry import InvalidCameraRecord, decode_record

log = logging.getLogger(__name__)


class RegistryView:
    """Reads every registry partition (no group) and keeps camera counts per partition, for the assignor.

    Every worker runs one: whichever becomes leader needs the counts of
    partitions it does not own. At 20,000 cameras this is a few MB read once.
    """

    def __init__(self, bootstrap: str, *, client_id: str = "kuzet-registry-view") -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self._lock = threading.Lock()
        self._where: dict[str, tuple[int, bool]] = {}  # camera id -> (partition, enabled)
        self._loaded = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lag = 0
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

    def weights(self) -> dict[int, int] | None:
        """Enabled cameras per partition; None until the first full read."""
        if not self._loaded.is_set():
            return None
        with self._lock:
            return dict(Counter(p for p, enabled in self._where.values() if enabled))

    def registered(self) -> tuple[int, int]:
        """(enabled, disabled) cameras in the registry."""
        with self._lock:
            enabled = sum(1 for _p, e in self._where.values() if e)
            return enabled, len(self._where) - enabled

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except Exception as exc:
                self.error = redact_text(f"{type(exc).__name__}: {exc}")[:300]
                log.warning("registry view: %s; retrying", self.error)
                self._stop.wait(2.0)

    def _follow(self) -> None:
        first = True
        for batch in follow_topic(self.bootstrap, topics.CAMERAS, client_id=self.client_id, stop=self._stop):
            with self._lock:
                if first:
                    self._where.clear()
                    first = False
                for r in batch.records:
                    try:
                        entry = decode_record(r.key, r.value)
                    except InvalidCameraRecord:
                        continue
                    if entry.camera is None:
                        self._where.pop(entry.camera_id, None)
                    else:
                        self._where[entry.camera_id] = (r.partition, entry.camera.enabled)
            if batch.caught_up and not self._loaded.is_set():
                self._loaded.set()
            self.lag = batch.lag
