"""``kuzet status``: which worker runs which camera, and in what state (built by :mod:`worker.status_report`)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from event_bus.kafka_admin import KafkaAdminError
from worker.assignment import DEFAULT_GROUP
from worker.registry import RegistryError
from worker.status_report import build_report

app = typer.Typer(help="Cameras per worker and each camera's state.", add_completion=False)


@app.callback(invoke_without_command=True)
def status(
    bootstrap: Annotated[
        str, typer.Option("--bootstrap", "-b", envvar="KUZET_BUS__KAFKA__BOOTSTRAP_SERVERS", help="Kafka bootstrap")
    ] = "127.0.0.1:9092",
    group: Annotated[str, typer.Option(help="worker consumer group")] = DEFAULT_GROUP,
    since: Annotated[float, typer.Option(help="minutes of camera status history to read")] = 15.0,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Print cameras per worker and each camera's state."""
    try:
        report = build_report(bootstrap, group, since * 60.0)
    except (KafkaAdminError, RegistryError) as exc:
        typer.echo(f"error: cannot read status from Kafka at {bootstrap}: {exc}", err=True)
        raise typer.Exit(3) from None
    if as_json:
        typer.echo(json.dumps(report.to_json(), default=str))
        return
    typer.echo(f"group {report.group}: {report.group_state}, {len(report.workers)} worker(s)")
    typer.echo(f"{'WORKER':<20} {'HOST':<16} {'CAPACITY':>8} {'PARTITIONS':>10} {'CAMERAS':>7}")
    for w in report.workers:
        cap = str(w.capacity) if w.capacity is not None else "-"
        typer.echo(f"{w.worker_id:<20} {w.host:<16} {cap:>8} {len(w.partitions):>10} {len(w.cameras):>7}")
    typer.echo("")
    typer.echo(f"{'CAMERA':<24} {'WORKER':<20} {'STATE':<17} REASON")
    for c in report.cameras:
        typer.echo(f"{c.camera_id:<24} {c.worker or '-':<20} {c.state:<17} {c.reason[:80]}")
    counts = ", ".join(f"{n} {s}" for s, n in sorted(report.counts().items()))
    typer.echo(f"\n{len(report.cameras)} camera(s): {counts or 'none'}; {report.invalid_records} invalid record(s)")


if __name__ == "__main__":
    app()
