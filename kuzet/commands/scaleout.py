"""``kuzet scale-worker``: a worker whose cameras come from the registry topic through the worker group.

Start as many as needed (up to the registry's 64 partitions); each one joins
the group, gets a balanced share of the cameras, takes over a dead worker's
cameras within the group's session timeout, and serves ``/metrics``,
``/healthz`` and ``/readyz`` on ``--metrics-port``.

``--journal FILE`` appends one JSON line per assignment event (assigned,
revoked, start, stop, update, pending, invalid) and per camera's first analysed
frame, with wall-clock times: failover and rebalance tests read it, and so can
an operator reconstructing what moved where.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Annotated, Any

import typer

from core.config import BusConfig, ConfigError, KafkaConfig, KuzetConfig, WorkerConfig, load_config
from core.health import CameraState
from core.logs import setup_logging
from core.redact import redact_text

app = typer.Typer(
    help="Run a scale-out worker: cameras from the registry topic via the worker consumer group.",
    add_completion=False,
)


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


def _scale_config(cfg: KuzetConfig, bootstrap: str | None, worker_id: str | None) -> KuzetConfig:
    """The loaded config with the Kafka bus forced on (the registry needs it) and the CLI overrides applied."""
    kafka = cfg.bus.kafka
    if bootstrap:
        kafka = KafkaConfig(**{**kafka.model_dump(), "bootstrap_servers": bootstrap})
    bus = BusConfig(**{**cfg.bus.model_dump(), "kind": "kafka", "kafka": kafka})
    worker = cfg.worker
    if worker_id:
        worker = WorkerConfig(**{**cfg.worker.model_dump(), "id": worker_id})
    # cameras come from the registry, never from the file, in this mode
    return cfg.model_copy(update={"bus": bus, "worker": worker, "cameras": []})


@app.callback(invoke_without_command=True)
def scale_worker(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML configuration (models, bus, storage)")
    ] = None,
    group: Annotated[str, typer.Option(help="consumer group of the workers on kuzet.cameras.v1")] = "kuzet-workers",
    capacity: Annotated[int, typer.Option(min=1, max=100_000, help="most cameras this worker runs")] = 64,
    metrics_port: Annotated[int, typer.Option(min=0, max=65535, help="/metrics /healthz /readyz port (0: any)")] = 9400,
    metrics_host: Annotated[str, typer.Option(help="address the HTTP endpoints bind to")] = "127.0.0.1",
    bootstrap: Annotated[str | None, typer.Option(help="Kafka bootstrap servers (default: from the config)")] = None,
    worker_id: Annotated[str | None, typer.Option(help="worker id (default: from the config)")] = None,
    journal: Annotated[Path | None, typer.Option(help="append assignment events as JSON lines to this file")] = None,
    status_interval: Annotated[
        float, typer.Option(min=1.0, help="seconds between camera status heartbeats on kuzet.camera-status.v1")
    ] = 30.0,
    session_timeout_ms: Annotated[int, typer.Option(min=3000, max=60000, help="group session timeout")] = 8000,
) -> None:
    """Run until SIGTERM / Ctrl-C: cameras stop before the worker leaves the group; the outbox is flushed."""
    try:
        cfg = _scale_config(load_config(config), bootstrap, worker_id)
    except (ConfigError, ValueError) as exc:
        typer.echo(f"configuration error\n{exc}", err=True)
        raise typer.Exit(2) from None
    setup_logging(cfg.log_level)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sink: IO[str] | None = None
    if journal is not None:
        journal.parent.mkdir(parents=True, exist_ok=True)
        sink = journal.open("a", encoding="utf-8")
    try:
        code = run_scale_worker(
            cfg,
            stop,
            group=group,
            capacity=capacity,
            metrics_host=metrics_host,
            metrics_port=metrics_port,
            journal=JsonJournal(sink, cfg.worker.id),
            status_interval_s=status_interval,
            session_timeout_ms=session_timeout_ms,
        )
    finally:
        if sink is not None:
            sink.close()
    raise typer.Exit(code)


def run_scale_worker(
    cfg: KuzetConfig,
    stop: threading.Event,
    *,
    group: str,
    capacity: int,
    metrics_host: str,
    metrics_port: int,
    journal: JsonJournal,
    status_interval_s: float = 30.0,
    session_timeout_ms: int = 8000,
) -> int:
    """The worker's life: metrics server, registry topic, models, group membership; returns the exit code."""
    from event_bus.interfaces import OutRecord
    from event_bus.transport import open_publisher
    from worker.assignment import AssignmentSettings, CameraAssignment
    from worker.http import HealthServer
    from worker.metrics import WorkerMetrics
    from worker.registry import CameraRegistry, RegistryError
    from worker.runtime import Worker

    bootstrap = cfg.bus.kafka.bootstrap_servers
    metrics = WorkerMetrics()
    worker = Worker(cfg, publisher=metrics.wrap_publisher(open_publisher(cfg.bus)), detector_hook=metrics.detector_hook)
    worker.start()

    def sink(records: Sequence[OutRecord]) -> None:
        worker.spool.append_many([(r, None, None) for r in records])
        worker.relay.poke()

    settings = AssignmentSettings(
        bootstrap=bootstrap,
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
    metrics.bind(worker, assignment)
    models_ready = threading.Event()
    model_error: list[str] = []

    def spool_ok() -> tuple[bool, str]:
        path = Path(cfg.bus.spool_path)
        writable = os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))
        depth = worker.spool.stats().depth
        return writable, f"{path} depth {depth}" if writable else f"{path} is not writable"

    def bus_ok() -> tuple[bool, str]:
        relay = worker.relay.stats()
        a = assignment.stats()
        ok = relay.consecutive_failures < 3 and a.member_of_group
        detail = f"relay failures in a row {relay.consecutive_failures}; group member {a.member_of_group}"
        return ok, detail + (f"; last error {relay.last_error}" if relay.last_error and not ok else "")

    def model_ok() -> tuple[bool, str]:
        if model_error:
            return False, model_error[0]
        return models_ready.is_set(), f"loaded {worker.models_loaded()}"

    def status() -> dict[str, Any]:
        health = worker.camera_health()
        return {
            "worker": cfg.worker.id,
            "capacity": capacity,
            "partitions": assignment.partitions(),
            "cameras": {cid: {"state": h.state, "last_analysed_at": h.last_analysed_at} for cid, h in health.items()},
            "pending": assignment.pending(),
        }

    server = HealthServer(
        metrics.registry,
        host=metrics_host,
        port=metrics_port,
        checks={"model": model_ok, "spool": spool_ok, "bus": bus_ok},
        status=status,
    ).start()
    journal.write("listening", details={"url": server.url, "pid": os.getpid(), "capacity": capacity})
    typer.echo(f"worker {cfg.worker.id}: metrics on {server.url}/metrics", err=True)

    registry = CameraRegistry(bootstrap)
    deadline = time.monotonic() + 120
    while not stop.is_set():
        try:
            registry.ensure_topic()
            break
        except (RegistryError, Exception) as exc:
            if time.monotonic() > deadline:
                typer.echo(f"cannot create the registry topic: {redact_text(str(exc))}", err=True)
                break
            stop.wait(2.0)
    try:
        worker.load_models()
        models_ready.set()
    except Exception as exc:
        model_error.append(redact_text(f"{type(exc).__name__}: {exc}")[:300])
        typer.echo(f"model loading failed: {model_error[0]}", err=True)
    journal.write("models", details={"loaded": worker.models_loaded()})
    assignment.start()
    reported_first: dict[str, float] = {}
    frames_seen: dict[str, int] = {}
    next_heartbeat = time.monotonic() + status_interval_s
    try:
        while not stop.wait(0.25):
            health = worker.camera_health()
            for cid, h in health.items():
                if h.first_analysed_at is not None and reported_first.get(cid) != h.first_analysed_at:
                    reported_first[cid] = h.first_analysed_at
                    journal.write("first_frame", cid, ts=h.first_analysed_at)
            for cid in list(reported_first):
                if cid not in health:
                    del reported_first[cid]
            if time.monotonic() >= next_heartbeat:
                next_heartbeat = time.monotonic() + status_interval_s
                sink(_heartbeats(worker, health, frames_seen, status_interval_s))
    finally:
        assignment.stop()
        worker.stop(flush_timeout_s=10.0)
        server.stop()
        registry.close()
        journal.write("stopped")
    return 0


def _heartbeats(worker: Any, health: dict[str, Any], frames_seen: dict[str, int], interval_s: float) -> list[Any]:
    """A CameraStatus per running camera, so `kuzet status` sees every camera's state without waiting for a change."""
    from event_bus.events import CameraStatus
    from event_bus.interfaces import OutRecord
    from event_bus.topics import CAMERA_STATUS

    stats = worker.camera_stats()
    now = datetime.now(UTC)
    out = []
    for cid, h in health.items():
        if h.state not in {s.value for s in CameraState}:
            continue  # still starting: its first status event is on its way
        s = stats.get(cid)
        analysed = int(getattr(s, "frames_analysed", 0))
        fps = max(0.0, (analysed - frames_seen.get(cid, analysed)) / interval_s)
        frames_seen[cid] = analysed
        last = datetime.fromtimestamp(h.last_analysed_at, UTC) if h.last_analysed_at else None
        status = CameraStatus(
            camera_id=cid,
            state=CameraState(h.state),
            reason=h.reason or "heartbeat",
            input_fps=0.0,
            analysed_fps=round(fps, 3),
            last_frame_at=last,
            reconnects=int(getattr(s, "reconnects", 0)),
            worker_id=worker.worker_id,
            at=now,
        )
        out.append(OutRecord(CAMERA_STATUS, cid, status.model_dump_json().encode()))
    return out


if __name__ == "__main__":
    sys.exit(app())
