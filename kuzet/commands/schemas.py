"""`kuzet schemas`: export the event JSON Schemas from the models, or check the committed files match them."""

from __future__ import annotations

from pathlib import Path

import typer

from event_bus import schemas

app = typer.Typer(help="Event JSON Schemas (event_bus/schemas/<name>.v<version>.json).", no_args_is_help=True)


@app.command("export")
def export_cmd(
    directory: Path = typer.Option(schemas.SCHEMA_DIR, "--dir", help="where to write the schema files"),  # noqa: B008
) -> None:
    """Write one JSON Schema file per event type from the pydantic models."""
    for path in schemas.export(directory):
        typer.echo(f"wrote {path}")


@app.command("check")
def check_cmd(
    directory: Path = typer.Option(schemas.SCHEMA_DIR, "--dir", help="directory holding the committed files"),  # noqa: B008
) -> None:
    """Fail (exit 1) when the committed schema files differ from the models."""
    problems = schemas.check(directory)
    for problem in problems:
        typer.echo(problem, err=True)
    if problems:
        raise typer.Exit(code=1)
    typer.echo("schemas match the models")
