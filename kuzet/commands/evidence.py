"""`kuzet evidence`: verify clips and snapshots against their chain-of-custody manifests.

    kuzet evidence verify --camera cam-1 --date 2026-03-01 [--incident ID] [--config kuzet.yaml]
    kuzet evidence verify --bundle incident-bundle.zip

Exit code 0 when everything verifies, 1 when any check fails (each failure printed).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from core.config import ConfigError, KuzetConfig, load_config
from storage.evidence_verify import VerifyReport, verify_bundle, verify_camera_day
from storage.retention import run_lifecycle
from storage.snapshot_stores import open_snapshot_store
from storage.snapshots import SnapshotError

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
        cfg, store = _store(config)
        expired_before = datetime.now(UTC).date() - timedelta(days=cfg.evidence.retention_days)
        try:
            report = verify_camera_day(store, camera, when, incident_id=incident, expired_before=expired_before)
        except SnapshotError as exc:
            typer.echo(f"object store: {exc}", err=True)
            raise typer.Exit(2) from None
    _print(report, as_json)
    if not report.ok:
        raise typer.Exit(1)


def _store(config: Path | None) -> tuple[KuzetConfig, Any]:
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        typer.echo(f"configuration: {exc}", err=True)
        raise typer.Exit(2) from None
    return cfg, open_snapshot_store(cfg.storage)


@app.command("retention")
def retention_cmd(
    days: Annotated[int | None, typer.Option(min=1, max=3650, help="override evidence.retention_days")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML configuration naming the object store")] = None,
) -> None:
    """Install the S3 lifecycle rule that expires clips, snapshots and manifests (legal holds excluded)."""
    cfg, store = _store(config)
    if not hasattr(store, "set_retention_days"):
        typer.echo("the local store has no lifecycle rules; nothing installed", err=True)
        raise typer.Exit(2)
    try:
        store.set_retention_days(days or cfg.evidence.retention_days)
        installed = store.retention_days()
    except SnapshotError as exc:
        typer.echo(f"object store: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"lifecycle rule on bucket {store.bucket}: expire after {installed} day(s) unless on legal hold")


@app.command("expire")
def expire_cmd(
    now: Annotated[str | None, typer.Option(help="apply the rule as of this time (ISO 8601; default: now)")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML configuration naming the object store")] = None,
) -> None:
    """Apply the bucket's installed lifecycle rule once (for S3 services that apply it late or never)."""
    _, store = _store(config)
    if not hasattr(store, "retention_days"):
        typer.echo("the local store has no lifecycle rules", err=True)
        raise typer.Exit(2)
    at = datetime.fromisoformat(now) if now else datetime.now(UTC)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    try:
        report = run_lifecycle(store, at)
    except SnapshotError as exc:
        typer.echo(f"object store: {exc}", err=True)
        raise typer.Exit(2) from None
    if report.cutoff is None:
        typer.echo("no kuzet lifecycle rule on the bucket (run `kuzet evidence retention`)")
        return
    typer.echo(f"cutoff {report.cutoff.isoformat()}: {len(report.expired)} expired, "
               f"{len(report.kept_on_hold)} kept on legal hold")  # fmt: skip
