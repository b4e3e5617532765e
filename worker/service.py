"""The scale-out worker's life: a worker whose cameras come from the registry topic through the worker group.

Start as many as needed (the registry's partition count is no limit: cameras
are assigned one by one, :mod:`worker.assignment`); each one joins the group,
gets a share of the cameras in proportion to its capacity, takes over a dead
worker's cameras within the group's session timeout, and serves ``/metrics``,
``/healthz`` and ``/readyz``. ``kuzet scale-worker`` parses its options and
calls :func:`run_scale_worker`.

The journal (:class:`JsonJournal`) gets one JSON line per assignment event
(assigned, revoked, start, stop, update, pending, invalid) and per camera's
first analysed frame, with wall-clock times: failover and rebalance tests read
it, and so can an operator reconstructing what moved where.

Every ``worker.status_interval_s`` each running camera's state goes out as a
``CameraStatus`` heartbeat (the worker's own :mod:`worker.heartbeat`, as for
``kuzet worker``), so ``kuzet status`` sees every camera without waiting for a
change.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from core.config import KuzetConfig
from core.redact import redact_text
from event_bus.interfaces import OutRecord
from event_bus.transport import open_publisher
from worker.assignment import AssignmentSettings, CameraAssignment
from worker.http import HealthServer
from worker.metrics import WorkerMetrics
from worker.registry import CameraRegistry, RegistryError
from worker.runtime import Worker

log = logging.getLogger(__name__)

REGISTRY_TOPIC_WAIT_S = 120.0


class JsonJournal:
    """Thread-safe JSON-lines journal, flushed per line (a SIGKILL loses at most the line being written)."""

    def __init__(self, sink: IO[str] | None, worker_id: str) -> None:
        self._sink = sink
        self._worker = worker_id
        self._lock = threading.Lock()

    def write(
        self, event: str, camera: str = "", details: dict[str, Any] | None = None, ts: float | None = None
    ) -> None:
        if self._sink is None:
            return
        doc = {"ts": ts if ts is not None else time.time(), "worker": self._worker, "event": event, "camera": camera}
        if details:
            doc.update(details)
        line = redact_text(json.dumps(doc, default=str))
        with self._lock:
            self._sink.write(line + "\n")
            self._sink.flush()


def run_scale_worker(
    cfg: KuzetConfig,
    stop: threading.Event,
    *,
    group: str,
    capacity: int,
    metrics_host: str,
    metrics_port: int,
    journal: JsonJournal,
    session_timeout_ms: int = 8000,
) -> int:
    """The worker's life: metrics server, registry topic, models, group membership; returns the exit code.

    Runs until ``stop`` is set; cameras stop before the worker leaves the group, and the outbox is flushed.
    """
    metrics = WorkerMetrics()
    worker = Worker(cfg, publisher=metrics.wrap_publisher(open_publisher(cfg.bus)), detector_hook=metrics.detector_hook)
    worker.start()

    def sink(records: Sequence[OutRecord]) -> None:
        worker.spool.append_many([(r, None, None) for r in records])
        worker.relay.poke()

    settings = AssignmentSettings(
        bootstrap=cfg.bus.kafka.bootstrap_servers,
        group_id=group,
        capacity=capacity,
        client_id=f"kuzet-{cfg.worker.id}",
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(1000, session_timeout_ms // 4),
    )
    assignment = CameraAssignment(
        worker,
        settings,
        known_detectors=[m.name for m in cfg.models],
        sink=sink,
        policy=cfg.camera_policy,
        on_event=journal.write,
    )
    worker.status_gate = assignment.status_generation  # statuses carry the generation; none once fenced
    metrics.bind(worker, assignment)
    health = _Readiness(cfg, worker, assignment, capacity)
    server = HealthServer(
        metrics.registry,
        host=metrics_host,
        port=metrics_port,
        checks={"model": health.model_ok, "spool": health.spool_ok, "bus": health.bus_ok},
        status=health.status,
    ).start()
    journal.write("listening", details={"url": server.url, "pid": os.getpid(), "capacity": capacity})
    log.info("worker %s: metrics on %s/metrics", cfg.worker.id, server.url)

    registry = CameraRegistry(cfg.bus.kafka.bootstrap_servers)
    _ensure_registry_topic(registry, stop)
    health.load_models()
    journal.write("models", details={"loaded": worker.models_loaded()})
    assignment.start()
    try:
        _run_until_stopped(worker, stop, journal)
    finally:
        assignment.stop()
        worker.stop(flush_timeout_s=10.0)
        server.stop()
        registry.close()
        journal.write("stopped")
    return 0


class _Readiness:
    """The ``/readyz`` checks (model, spool, bus) and the ``/status`` document of one scale-out worker."""

    def __init__(self, cfg: KuzetConfig, worker: Worker, assignment: CameraAssignment, capacity: int) -> None:
        self.cfg = cfg
        self.worker = worker
        self.assignment = assignment
        self.capacity = capacity
        self.models_ready = threading.Event()
        self.model_error: str | None = None

    def load_models(self) -> None:
        """Load every configured model; a failure is reported by ``/readyz`` (the worker stays up to say so)."""
        try:
            self.worker.load_models()
            self.models_ready.set()
        except Exception as exc:  # any loader failure (file, format, runtime) is the model check's answer
            self.model_error = redact_text(f"{type(exc).__name__}: {exc}")[:300]
            log.error("model loading failed: %s", self.model_error)

    def model_ok(self) -> tuple[bool, str]:
        if self.model_error is not None:
            return False, self.model_error
        return self.models_ready.is_set(), f"loaded {self.worker.models_loaded()}"

    def spool_ok(self) -> tuple[bool, str]:
        path = Path(self.cfg.bus.spool_path)
        writable = os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))
        depth = self.worker.spool.stats().depth
        return writable, f"{path} depth {depth}" if writable else f"{path} is not writable"

    def bus_ok(self) -> tuple[bool, str]:
        relay = self.worker.relay.stats()
        member = self.assignment.stats().member_of_group
        ok = relay.consecutive_failures < 3 and member
        detail = f"relay failures in a row {relay.consecutive_failures}; group member {member}"
        return ok, detail + (f"; last error {relay.last_error}" if relay.last_error and not ok else "")

    def status(self) -> dict[str, Any]:
        health = self.worker.camera_health()
        return {
            "worker": self.cfg.worker.id,
            "capacity": self.capacity,
            "generation": self.assignment.stats().generation,
            "cameras": {cid: {"state": h.state, "last_analysed_at": h.last_analysed_at} for cid, h in health.items()},
            "pending": self.assignment.pending(),
        }


def _ensure_registry_topic(registry: CameraRegistry, stop: threading.Event) -> None:
    """Create the registry topics, retrying while the broker is unreachable (up to two minutes)."""
    deadline = time.monotonic() + REGISTRY_TOPIC_WAIT_S
    while not stop.is_set():
        try:
            registry.ensure_topic()
            return
        except RegistryError as exc:
            if time.monotonic() > deadline:
                log.error("cannot create the registry topic: %s", exc)
                return
            stop.wait(2.0)


def _run_until_stopped(worker: Worker, stop: threading.Event, journal: JsonJournal) -> None:
    """Journal each camera's first analysed frame until ``stop`` is set."""
    reported_first: dict[str, float] = {}
    while not stop.wait(0.25):
        health = worker.camera_health()
        for cid, h in health.items():
            if h.first_analysed_at is not None and reported_first.get(cid) != h.first_analysed_at:
                reported_first[cid] = h.first_analysed_at
                journal.write("first_frame", cid, ts=h.first_analysed_at)
        for cid in list(reported_first):
            if cid not in health:
                del reported_first[cid]
