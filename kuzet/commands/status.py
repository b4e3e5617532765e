"""``kuzet status``: which worker runs which camera, and in what state (built by :mod:`worker.status_report`).

It reads the same configuration as the workers (``--config``: the Kafka
address and the heartbeat interval), lists workers started with either
``kuzet worker`` or ``kuzet scale-worker``, and answers within ``--timeout``
seconds or says which broker it could not reach and where that address came
from.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from core.config import ConfigError, load_config
from worker.assignment import DEFAULT_GROUP
from worker.status_report import StatusReport, build_report

app = typer.Typer(help="Cameras per worker and each camera's state.", add_completion=False)


class StatusUnavailable(RuntimeError):
    """Kafka could not be asked in time; the message says which address."""


def reachable(bootstrap: str, timeout_s: float) -> bool:
    """Whether any bootstrap address accepts a TCP connection (a quick, clear failure instead of a long hang)."""
    for addr in bootstrap.split(","):
        host, _, port = addr.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False


def report_within(bootstrap: str, group: str, since_s: float, stale_after_s: float, timeout_s: float) -> StatusReport:
    """:func:`build_report` bounded by ``timeout_s`` (kafka-python's own timeouts add up to far more)."""
    started = time.monotonic()
    if not reachable(bootstrap, min(2.0, timeout_s)):
        raise StatusUnavailable(f"no Kafka broker accepts connections at {bootstrap}")
    result: list[StatusReport] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(build_report(bootstrap, group, since_s, stale_after_s, timeout_s=max(1.0, timeout_s - 1)))
        except Exception as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name="status-report", daemon=True)
    thread.start()
    thread.join(max(0.1, timeout_s - (time.monotonic() - started)))
    if failure:
        exc = failure[0]
        raise StatusUnavailable(f"Kafka at {bootstrap} refused the status queries: {type(exc).__name__}: {exc}")
    if not result:
        raise StatusUnavailable(f"Kafka at {bootstrap} did not answer within {timeout_s:g} s")
    return result[0]


@app.command()
def status(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="the workers' YAML configuration: Kafka address, heartbeat interval"),
    ] = None,
    bootstrap: Annotated[
        str | None,
        typer.Option(
            "--bootstrap", "-b", help="Kafka bootstrap (default: bootstrap_servers of bus.kafka in the config)"
        ),
    ] = None,
    group: Annotated[str, typer.Option(help="scale-worker consumer group")] = DEFAULT_GROUP,
    since: Annotated[float, typer.Option(min=0.1, help="minutes of camera status history to read")] = 15.0,
    timeout: Annotated[float, typer.Option(min=1.0, max=120.0, help="give up after this many seconds")] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Workers (`kuzet worker` and `kuzet scale-worker`), their cameras and each camera's state, from Kafka."""
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        typer.echo(f"configuration error\n{exc}", err=True)
        raise typer.Exit(2) from None
    server = bootstrap or cfg.bus.kafka.bootstrap_servers
    origin = "--bootstrap" if bootstrap else f"bus.kafka.bootstrap_servers in {config or 'the defaults'}"
    try:
        report = report_within(server, group, since * 60.0, 2.0 * cfg.worker.status_interval_s, timeout)
    except StatusUnavailable as exc:
        typer.echo(f"error: {exc} (address from {origin})", err=True)
        sys.stderr.flush()
        # Kafka clients may still be blocked in a read on a daemon thread; interpreter shutdown would wait on
        # or abort in them, so leave at once: the message is out, nothing else needs cleaning up.
        os._exit(3)
    if as_json:
        typer.echo(json.dumps(report.to_json(), default=str))
        return
    _print_report(report)


def _print_report(report: StatusReport) -> None:
    """Two tables that fit 80 columns: workers, then cameras."""
    typer.echo(f"group {report.group}: {report.group_state}; {len(report.workers)} worker(s)")
    typer.echo(f"{'WORKER':<22} {'KIND':<12} {'HOST':<16} {'CAP':>5} {'GIVEN':>5} {'CAMERAS':>7}")
    for w in report.workers:
        cap = str(w.capacity) if w.capacity is not None else "-"
        parts = str(len(w.assigned)) if w.kind == "scale-worker" else "-"
        typer.echo(
            f"{w.worker_id[:22]:<22} {w.kind:<12} {(w.host or '-')[:16]:<16} {cap:>5} {parts:>5} {len(w.cameras):>7}"
        )
    typer.echo("")
    typer.echo(f"{'CAMERA':<20} {'WORKER':<18} {'STATE':<16} REASON")
    for c in report.cameras:
        typer.echo(f"{c.camera_id[:20]:<20} {(c.worker or '-')[:18]:<18} {c.state:<16} {c.reason[:22]}")
    counts = ", ".join(f"{n} {s}" for s, n in sorted(report.counts().items()))
    typer.echo(f"\n{len(report.cameras)} camera(s): {counts or 'none'}; {report.invalid_records} invalid record(s)")


if __name__ == "__main__":
    app()
