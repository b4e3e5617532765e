"""The ``kuzet`` command line (typer): one entry point for workers, the demo, models and schemas."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from core.config import ConfigError, load_config
from core.logs import setup_logging
from kuzet.stop_signals import StopSignals

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Kuzet: CCTV streams to incidents.")
err = Console(stderr=True)


def _mount() -> None:
    from kuzet.commands.models import app as models_app
    from kuzet.commands.schemas import app as schemas_app

    app.add_typer(models_app, name="models")
    app.add_typer(schemas_app, name="schemas")

    from kuzet.commands.plates import app as plates_app
    from kuzet.commands.plates import audit_app

    app.add_typer(plates_app, name="plates")
    app.add_typer(audit_app, name="audit")

    from kuzet.commands.console import app as console_app

    app.add_typer(console_app, name="console")

    from kuzet.commands.cameras import app as cameras_app
    from kuzet.commands.kafka_acls import kafka_acls
    from kuzet.commands.scaleout import scale_worker
    from kuzet.commands.status import status

    app.add_typer(cameras_app, name="cameras")
    # plain commands, not groups: neither has subcommands, so help must not show `COMMAND [ARGS]...`
    app.command("status")(status)
    app.command("scale-worker")(scale_worker)
    app.command("kafka-acls")(kafka_acls)

    from kuzet.commands.evidence import app as evidence_app

    app.add_typer(evidence_app, name="evidence")


@app.command()
def demo(
    clip: Annotated[
        Path | None, typer.Option(help="video file to analyse (default: the bundled vtest excerpt)")
    ] = None,
    out: Annotated[Path, typer.Option(help="where events, snapshots and the local bus go")] = Path("var/demo"),
    fps: Annotated[float, typer.Option(min=0.1, max=30.0, help="analysed frames per second")] = 5.0,
    fast: Annotated[bool, typer.Option(help="replay the clip as fast as possible instead of in real time")] = False,
    web: Annotated[bool, typer.Option(help="serve the dispatch console on localhost while the demo runs")] = True,
    port: Annotated[int, typer.Option(min=1, max=65535, help="console port (a free one if taken)")] = 8765,
    wait: Annotated[bool, typer.Option(help="keep the console up after the clip ends, until Ctrl-C")] = True,
) -> None:
    """Run a worker on a sample clip with embedded defaults (no Kafka, S3 or PostgreSQL)."""
    from kuzet.demo import DEMO_CLIP, run_demo

    out.mkdir(parents=True, exist_ok=True)
    # The terminal belongs to the live display; the worker's JSON logs go to a file beside the events.
    log_file = (out / "worker.log").open("a", encoding="utf-8")
    setup_logging("info", stream=log_file)
    try:
        result = run_demo(
            clip or DEMO_CLIP, out, analysis_fps=fps, realtime=not fast, console_port=port if web else None
        )
        if result.console is not None:
            if wait:
                typer.echo(f"The console keeps serving at {result.console.url}; press Ctrl-C to stop.")
                StopSignals().wait()
            result.console.stop()
    except (ConfigError, FileNotFoundError) as exc:
        err.print(f"[red]demo failed:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None


@app.command()
def worker(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML configuration file (check it with kuzet check-config)")
    ] = None,
    journal: Annotated[
        Path | None, typer.Option(help="also append every incident event to this JSON-lines file once it is spooled")
    ] = None,
    summary_minutes: Annotated[
        float, typer.Option(min=0.0, max=1440.0, help="print a progress line every N minutes (0: only start/stop)")
    ] = 5.0,
) -> None:
    """Run a worker until SIGTERM or Ctrl-C; open incidents are ended and the outbox flushed on the way out."""
    from detectors.errors import DetectorError
    from event_bus.events import Incident
    from kuzet.summaries import WorkerSummary
    from worker.journal import Journal
    from worker.runtime import Worker, bus_target

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        err.print(f"[red]configuration error[/red]\n{escape(str(exc))}")
        raise typer.Exit(2) from None
    setup_logging(cfg.log_level)
    stop = StopSignals()
    summary = WorkerSummary(cfg.worker.id, summary_minutes * 60.0)
    with Journal.open(journal) as jrnl:

        def on_incident(incident: Incident) -> None:
            summary.on_incident(incident)
            if jrnl is not None:
                jrnl.write(incident)

        w = Worker(cfg, on_incident=on_incident)
        try:
            w.start()
        except DetectorError as exc:
            w.stop()
            err.print(f"[red]cannot start the worker:[/red] {escape(str(exc))}")
            raise typer.Exit(2) from None
        summary.started(w, bus_target(cfg))
        try:
            stop.wait()
        finally:
            summary.stopping()
            flushed = w.stop()
            summary.stopped(flushed, w.left_in_outbox, str(cfg.bus.spool_path))


@app.command("check-config")
def check_config(config: Annotated[Path, typer.Argument(help="YAML configuration file")]) -> None:
    """Validate a configuration file and print every problem in it, unset secrets included (values never shown)."""
    from core.config_check import check_config_file

    result = check_config_file(config)
    if not result.ok or result.config is None:
        # plain lines, never wrapped: operators grep them and copy setting paths out of them
        typer.echo(f"invalid\n{config}: {len(result.problems)} problem(s)", err=True)
        for problem in result.problems:
            typer.echo(f"  - {problem}", err=True)
        raise typer.Exit(2)
    cfg = result.config
    typer.echo(f"ok: {len(cfg.cameras)} camera(s), models {[m.name for m in cfg.models]}")


_mount()

if __name__ == "__main__":
    sys.exit(app())
