"""`kuzet evidence`: verify clips and snapshots against their chain-of-custody manifests.

    kuzet evidence verify --camera cam-1 --date 2026-03-01 [--incident ID] [--config kuzet.yaml]
    kuzet evidence verify --bundle incident-bundle.zip

Exit code 0 when everything verifies, 1 when any check fails (each failure printed).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from core.config import ConfigError, load_config
from storage.evidence_verify import VerifyReport, verify_bundle, verify_camera_day
from storage.snapshots import SnapshotError
from worker.factories import make_snapshot_store

app = typer.Typer(help="Evidence clips and snapshots: chain-of-custody checks.", no_args_is_help=True)


def _print(report: VerifyReport, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
        return
    for w in report.warnings:
        typer.echo(f"warning: {w}")
    for e in report.errors:
        typer.echo(f"FAILED: {e}", err=True)
    verdict = "verified" if report.ok else "NOT verified"
    typer.echo(f"{report.scope}: {verdict} ({report.artifacts} artifact(s), {report.manifests} manifest(s))")


@app.command("verify")
def verify_cmd(
    camera: Annotated[str | None, typer.Option(help="camera id (with --date)")] = None,
    day: Annotated[str | None, typer.Option("--date", help="UTC day, YYYY-MM-DD (with --camera)")] = None,
    incident: Annotated[str | None, typer.Option(help="only this incident's artifacts (whole day's chain)")] = None,
    bundle: Annotated[Path | None, typer.Option(help="an evidence bundle (zip) exported by the console")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML configuration naming the object store")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Check artifacts against their manifests and the per-camera manifest chain."""
    if bundle is not None:
        report = verify_bundle(bundle)
    else:
        if not camera or not day:
            raise typer.BadParameter("give --camera and --date, or --bundle")
        try:
            when = date.fromisoformat(day)
        except ValueError:
            raise typer.BadParameter(f"--date {day!r} is not YYYY-MM-DD") from None
        try:
            cfg = load_config(config)
        except ConfigError as exc:
            typer.echo(f"configuration: {exc}", err=True)
            raise typer.Exit(2) from None
        store = make_snapshot_store(cfg.storage)
        expired_before = datetime.now(UTC).date() - timedelta(days=cfg.evidence.retention_days)
        try:
            report = verify_camera_day(store, camera, when, incident_id=incident, expired_before=expired_before)
        except SnapshotError as exc:
            typer.echo(f"object store: {exc}", err=True)
            raise typer.Exit(2) from None
    _print(report, as_json)
    if not report.ok:
        raise typer.Exit(1)
