"""``kuzet scale-worker``: parse the options and run :func:`worker.service.run_scale_worker` until SIGTERM.

``--journal FILE`` appends one JSON line per assignment event and per camera's
first analysed frame (see :mod:`worker.service`).
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import IO, Annotated

import typer

from core.config import BusConfig, ConfigError, KafkaConfig, KuzetConfig, WorkerConfig, load_config
from core.logs import setup_logging

app = typer.Typer(
    help="Run a scale-out worker: cameras from the registry topic via the worker consumer group.",
    add_completion=False,
)


def _scale_config(
    cfg: KuzetConfig, bootstrap: str | None, worker_id: str | None, status_interval_s: float | None = None
) -> KuzetConfig:
    """The loaded config with the Kafka bus forced on (the registry needs it) and the CLI overrides applied."""
    kafka = cfg.bus.kafka
    if bootstrap:
        kafka = KafkaConfig(**{**kafka.model_dump(), "bootstrap_servers": bootstrap})
    bus = BusConfig(**{**cfg.bus.model_dump(), "kind": "kafka", "kafka": kafka})
    worker = cfg.worker
    if worker_id:
        worker = WorkerConfig(**{**worker.model_dump(), "id": worker_id})
    if status_interval_s is not None:  # the worker itself sends the heartbeats (worker.heartbeat)
        worker = WorkerConfig(**{**worker.model_dump(), "status_interval_s": status_interval_s})
    # cameras come from the registry, never from the file, in this mode
    return cfg.model_copy(update={"bus": bus, "worker": worker, "cameras": []})


@app.command()
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
        float | None,
        typer.Option(
            min=0.2, help="seconds between camera status heartbeats (default: status_interval_s of the worker, 30)"
        ),
    ] = None,
    session_timeout_ms: Annotated[int, typer.Option(min=3000, max=60000, help="group session timeout")] = 8000,
) -> None:
    """Run until SIGTERM / Ctrl-C: cameras stop before the worker leaves the group; the outbox is flushed."""
    from worker.service import JsonJournal, run_scale_worker

    try:
        cfg = _scale_config(load_config(config), bootstrap, worker_id, status_interval)
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
            session_timeout_ms=session_timeout_ms,
        )
    finally:
        if sink is not None:
            sink.close()
    raise typer.Exit(code)


if __name__ == "__main__":
    sys.exit(app())
