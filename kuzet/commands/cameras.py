"""``kuzet cameras``: add, update, remove, list and import cameras in the registry topic ``kuzet.cameras.v1``.

Every input is validated before anything is written (the same rules as the
worker configuration: id pattern, URL scheme, no credentials in the URL, fps
bounds, zones inside the frame), duplicates are refused, and nothing printed
ever holds a credential: URLs are shown redacted, credentials only as their
secret reference (``env:NAME`` / ``file:/path``), never resolved.

Running workers pick changes up within a second or two (they follow the topic);
nothing restarts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from core.config import CameraConfig
from core.redact import redact_url

app = typer.Typer(help="Camera registry (kuzet.cameras.v1): add, update, remove, list, import.", no_args_is_help=True)

Bootstrap = Annotated[
    str | None,
    typer.Option(
        "--bootstrap",
        "-b",
        envvar="KUZET_BUS__KAFKA__BOOTSTRAP_SERVERS",
        show_envvar=False,  # a 35-character name cannot wrap in an 80-column help table; said in the text
        help="Kafka bootstrap servers, host:port[,...] (default: the worker's environment variable, else "
        "127.0.0.1:9092)",
    ),
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def _registry(bootstrap: str | None) -> Iterator[Any]:
    """The registry, closed after use; its errors become exit codes (2: a bad record, 3: Kafka)."""
    from worker.registry import CameraRegistry, InvalidCameraRecord, RegistryError

    reg = CameraRegistry(bootstrap or "127.0.0.1:9092")
    try:
        try:
            reg.ensure_topic()
        except RegistryError as exc:
            raise _fail(f"cannot reach Kafka at {reg.bootstrap}: {exc}", 3) from None
        yield reg
    except InvalidCameraRecord as exc:
        raise _fail(str(exc)) from None
    except RegistryError as exc:
        raise _fail(str(exc), 3) from None
    finally:
        reg.close()


def _who() -> str:
    return f"cli:{os.environ.get('USER', 'unknown')}"[:128]


def _parse_zone(spec: str) -> dict[str, Any]:
    """``NAME:x1,y1;x2,y2;x3,y3[:severity]`` -> a zone mapping (coordinates 0..1)."""
    from worker.registry import InvalidCameraRecord

    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise InvalidCameraRecord(f"zone {spec!r}: expected NAME:x1,y1;x2,y2;x3,y3[:severity]")
    try:
        points = [tuple(float(v) for v in pt.split(",")) for pt in parts[1].split(";") if pt.strip()]
    except ValueError:
        raise InvalidCameraRecord(f"zone {parts[0]!r}: coordinates must be numbers") from None
    if any(len(p) != 2 for p in points):
        raise InvalidCameraRecord(f"zone {parts[0]!r}: every vertex is x,y")
    zone: dict[str, Any] = {"name": parts[0], "polygon": points}
    if len(parts) == 3:
        zone["severity"] = parts[2]
    return zone


def _camera_from_options(base: dict[str, Any], **opts: Any) -> CameraConfig:
    from worker.registry import validate_camera

    data = dict(base)
    for key, value in opts.items():
        if value is None:
            continue
        data[key] = value
    return validate_camera(data, f"camera {data.get('id', '?')}")


def _zones(zone: list[str] | None, zones_file: Path | None) -> list[dict[str, Any]] | None:
    from worker.registry import InvalidCameraRecord

    if zones_file is not None:
        import yaml

        try:
            loaded = yaml.safe_load(zones_file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise InvalidCameraRecord(f"zones file {zones_file}: {exc}") from None
        if not isinstance(loaded, list):
            raise InvalidCameraRecord(f"zones file {zones_file}: expected a list of zones")
        return loaded
    if zone:
        return [_parse_zone(z) for z in zone]
    return None


def _detectors(detectors: str | None) -> list[str] | None:
    return [d.strip() for d in detectors.split(",") if d.strip()] if detectors else None


ZoneOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--zone", help="NAME:x1,y1;x2,y2;... [:severity], at least 3 points, 0..1 frame coordinates (repeatable)"
    ),
]
ZonesFileOpt = Annotated[Path | None, typer.Option("--zones-file", help="YAML/JSON list of zones")]


@app.command("add")
def add_cmd(
    camera_id: Annotated[str, typer.Argument(help="camera id: a-z, 0-9, '_' and '-', up to 64 characters")],
    url: Annotated[str, typer.Option("--url", help="rtsp://host/path (no credentials in it) or a file path")],
    credentials: Annotated[
        str | None, typer.Option(help="secret reference holding user:password: env:NAME or file:/path")
    ] = None,
    fps: Annotated[float | None, typer.Option("--fps", help="analysed frames per second (0 < fps <= 30)")] = None,
    detectors: Annotated[str | None, typer.Option(help="comma-separated model names, e.g. person,fire")] = None,
    zone: ZoneOpt = None,
    zones_file: ZonesFileOpt = None,
    name: Annotated[str | None, typer.Option(help="shown to dispatchers")] = None,
    location: Annotated[str | None, typer.Option(help="shown to dispatchers")] = None,
    keyframe_only: Annotated[str | None, typer.Option(help="auto, always or never")] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="register without running it")] = False,
    bootstrap: Bootstrap = None,
) -> None:
    """Register a new camera; refused if the id is already in the registry."""
    from worker.registry import InvalidCameraRecord

    try:
        cam = _camera_from_options(
            {"id": camera_id, "url": url},
            credentials=credentials,
            analysis_fps=fps,
            detectors=_detectors(detectors),
            zones=_zones(zone, zones_file),
            name=name,
            location=location,
            keyframe_only=keyframe_only,
            enabled=False if disabled else None,
        )
    except InvalidCameraRecord as exc:
        raise _fail(str(exc)) from None
    with _registry(bootstrap) as reg:
        if camera_id in reg.snapshot().cameras:
            raise _fail(f"camera {camera_id} already exists; use `kuzet cameras update`")
        reg.put([cam], _who())
    typer.echo(f"added {cam.id} ({redact_url(cam.url)}, {cam.analysis_fps:g} fps, {len(cam.zones)} zone(s))")


@app.command("update")
def update_cmd(
    camera_id: Annotated[str, typer.Argument(help="id of a registered camera")],
    url: Annotated[str | None, typer.Option("--url")] = None,
    credentials: Annotated[str | None, typer.Option(help="secret reference: env:NAME or file:/path")] = None,
    fps: Annotated[float | None, typer.Option("--fps")] = None,
    detectors: Annotated[str | None, typer.Option()] = None,
    zone: ZoneOpt = None,
    zones_file: ZonesFileOpt = None,
    clear_zones: Annotated[bool, typer.Option("--clear-zones", help="remove every zone")] = False,
    name: Annotated[str | None, typer.Option()] = None,
    location: Annotated[str | None, typer.Option()] = None,
    keyframe_only: Annotated[str | None, typer.Option()] = None,
    enable: Annotated[bool | None, typer.Option("--enable/--disable", help="run or pause the camera")] = None,
    bootstrap: Bootstrap = None,
) -> None:
    """Change a registered camera; the worker running it restarts that camera only."""
    with _registry(bootstrap) as reg:
        current = reg.snapshot().cameras.get(camera_id)
        if current is None or current.camera is None:
            raise _fail(f"camera {camera_id} is not in the registry; use `kuzet cameras add`")
        zones = [] if clear_zones else _zones(zone, zones_file)
        cam = _camera_from_options(
            current.camera.model_dump(),
            url=url,
            credentials=credentials,
            analysis_fps=fps,
            detectors=_detectors(detectors),
            zones=zones,
            name=name,
            location=location,
            keyframe_only=keyframe_only,
            enabled=enable,
        )
        reg.put([cam], _who())
    typer.echo(f"updated {cam.id} ({cam.analysis_fps:g} fps, zones {[z.name for z in cam.zones]})")


@app.command("remove")
def remove_cmd(
    camera_ids: Annotated[list[str], typer.Argument(help="ids of registered cameras")],
    force: Annotated[bool, typer.Option(help="write the tombstone even if the id is not registered")] = False,
    bootstrap: Bootstrap = None,
) -> None:
    """Remove cameras (a tombstone each); their workers stop them and end their open incidents."""
    with _registry(bootstrap) as reg:
        if not force:
            known = reg.snapshot().cameras
            missing = [c for c in camera_ids if c not in known]
            if missing:
                raise _fail(f"not in the registry: {', '.join(missing)} (use --force to tombstone anyway)")
        n = reg.remove(camera_ids)
    typer.echo(f"removed {n} camera(s): {', '.join(camera_ids)}")


@app.command("list")
def list_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one camera each")] = False,
    bootstrap: Bootstrap = None,
) -> None:
    """List registered cameras (URLs redacted; credentials only as their secret reference)."""
    with _registry(bootstrap) as reg:
        snap = reg.snapshot()
    for cid in sorted(snap.cameras):
        entry = snap.cameras[cid]
        cam = entry.camera
        if cam is None:
            continue
        row = {
            "id": cid,
            "url": redact_url(cam.url),
            "credentials": cam.credentials,
            "fps": cam.analysis_fps,
            "detectors": cam.detectors,
            "zones": [z.name for z in cam.zones],
            "enabled": cam.enabled,
            "partition": entry.partition,
        }
        if as_json:
            typer.echo(json.dumps(row))
        else:
            typer.echo(
                f"{cid:<24} {'on ' if cam.enabled else 'off'} {cam.analysis_fps:>5g} fps  p{entry.partition:<3}"
                f" {','.join(cam.detectors):<12} zones={','.join(row['zones']) or '-':<16} {row['url']}"
            )
    if not as_json:
        typer.echo(f"{len(snap.cameras)} camera(s); {len(snap.invalid)} invalid record(s) on the topic")


@app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="CSV (header: id,url,credentials,analysis_fps,...) or YAML file")],
    upsert: Annotated[bool, typer.Option(help="replace cameras that are already registered")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="validate only")] = False,
    bootstrap: Bootstrap = None,
) -> None:
    """Validate every camera of a file, then register them all (nothing is written if any is invalid)."""
    from worker.registry import InvalidCameraRecord, load_camera_file

    try:
        cameras = load_camera_file(file)
    except InvalidCameraRecord as exc:
        raise _fail(str(exc)) from None
    if dry_run:
        typer.echo(f"{file}: {len(cameras)} valid camera(s)")
        return
    with _registry(bootstrap) as reg:
        if not upsert:
            known = reg.snapshot().cameras
            clash = sorted(c.id for c in cameras if c.id in known)
            if clash:
                raise _fail(f"already registered: {', '.join(clash[:20])} (use --upsert to replace them)")
        n = reg.put(cameras, _who())
    typer.echo(f"imported {n} camera(s) from {file}")


if __name__ == "__main__":
    app()
