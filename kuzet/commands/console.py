"""`kuzet console`: serve the dispatch console, manage its users and API tokens.

Passwords are read from a hidden prompt or stdin (never from the command line,
where they would land in shell history and ``ps``); a generated password is
printed once and never stored in clear.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError

from core.config import format_validation_error
from dispatch.settings import ConsoleSettings
from storage.accounts import TOKEN_TTL_DAYS, Role, UserError
from storage.db import NotFoundError
from storage.workflow import WorkflowStore, open_workflow_store

app = typer.Typer(help="The dispatch console (web UI and JSON API).", no_args_is_help=True)
users_app = typer.Typer(help="Console users (dispatcher, investigator, admin).", no_args_is_help=True)
tokens_app = typer.Typer(help="Bearer tokens for other systems calling the JSON API.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="console YAML: database, bus, storage, host, port ... (see docs/console.md; env KUZET_CONSOLE_*)",
    ),
]


def load_settings(path: Path | None, **overrides: Any) -> ConsoleSettings:
    """Settings from YAML (if given), environment (KUZET_CONSOLE_*) and command-line overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            typer.echo(f"cannot read {path}: {exc}", err=True)
            raise typer.Exit(2) from None
        if not isinstance(loaded, dict):
            typer.echo(f"{path}: expected a mapping at the top level", err=True)
            raise typer.Exit(2)
        data = loaded
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return ConsoleSettings(**data)
    except ValidationError as exc:
        typer.echo(format_validation_error(exc, str(path or "console settings")), err=True)
        raise typer.Exit(2) from None


def _store(config: Path | None) -> WorkflowStore:
    return open_workflow_store(load_settings(config).database)


@contextmanager
def _refused(*errors: type[Exception], say: str | None = None) -> Iterator[None]:
    """The store's refusal as ``error: ...`` (``say`` or the error's own words) and exit status 2, no traceback."""
    try:
        yield
    except errors as exc:
        typer.echo(f"error: {say or exc}", err=True)
        raise typer.Exit(2) from None


def _read_password(from_stdin: bool, generate: bool) -> tuple[str, bool]:
    if generate:
        return secrets.token_urlsafe(15), True
    if from_stdin:
        return sys.stdin.readline().rstrip("\n"), False
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True), False


@app.command("serve")
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="bind address (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default 8080)")] = None,
    metrics_port: Annotated[
        int, typer.Option(envvar="KUZET_METRICS_PORT", min=0, max=65535, help="/metrics /healthz /readyz; 0: off")
    ] = 9400,
    metrics_host: Annotated[str, typer.Option(help="address the metrics endpoints bind to")] = "127.0.0.1",
    summary_minutes: Annotated[
        float, typer.Option(min=0.0, max=1440.0, help="print a progress line every N minutes (0: only start/stop)")
    ] = 5.0,
) -> None:
    """Serve the console until Ctrl-C; it consumes the incident and camera-status topics in its own group."""
    import threading

    import uvicorn

    from core.logs import setup_logging
    from dispatch.app import create_app
    from kuzet.service_metrics import console_server
    from kuzet.summaries import ConsoleSummary

    settings = load_settings(config, host=host, port=port)
    setup_logging("info")
    app = create_app(settings)
    # a port of its own, like every Kuzet process: probes answer even when the web app is saturated
    server = console_server(app.state.console, metrics_host, metrics_port) if metrics_port else None
    web = uvicorn.Server(
        uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)
    )
    summary = ConsoleSummary(app.state.console, summary_minutes * 60.0)
    bus = f"Kafka at {settings.bus.kafka.bootstrap_servers}" if settings.bus.kind == "kafka" else "the local bus"

    def announce() -> None:  # only once the socket is bound: "listening" must be true when printed
        while not web.started and not web.should_exit:
            threading.Event().wait(0.1)
        if web.started:
            where = f"http://{settings.host}:{settings.port}"
            summary.started(where, settings.database, bus, f"{server.url}/metrics" if server else None)

    threading.Thread(target=announce, name="console-announce", daemon=True).start()
    try:
        web.run()
    finally:
        summary.stopped()
        if server is not None:
            server.stop()


PasswordStdinOpt = Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")]
GenerateOpt = Annotated[bool, typer.Option(help="generate a password and print it once")]


def _show_generated(password: str, generated: bool) -> None:
    """Print a generated password once (a typed or piped one is never echoed)."""
    if generated:
        typer.echo(f"password (shown once): {password}")


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="login name: lower-case letters, digits, _ . -")],
    role: Annotated[Role, typer.Option(help="dispatcher, investigator or admin")],
    display_name: Annotated[str, typer.Option(help="name shown in the console")] = "",
    password_stdin: PasswordStdinOpt = False,
    generate: GenerateOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Create a user (argon2id password hash)."""
    password, generated = _read_password(password_stdin, generate)
    with _refused(UserError):
        user = _store(config).add_user(username, role, password, display_name)
    typer.echo(f"created {user.username} ({user.role.value})")
    _show_generated(password, generated)


@users_app.command("passwd")
def users_passwd(
    username: str,
    password_stdin: PasswordStdinOpt = False,
    generate: GenerateOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Set a user's password (ends the user's sessions)."""
    password, generated = _read_password(password_stdin, generate)
    with _refused(UserError, NotFoundError):
        _store(config).set_password(username, password)
    typer.echo(f"password changed for {username}")
    _show_generated(password, generated)


@users_app.command("disable")
def users_disable(username: str, config: ConfigOpt = None) -> None:
    """Disable a user (ends the user's sessions; tokens stop working)."""
    _set_disabled(username, config, disabled=True)


@users_app.command("enable")
def users_enable(username: str, config: ConfigOpt = None) -> None:
    """Enable a disabled user."""
    _set_disabled(username, config, disabled=False)


def _set_disabled(username: str, config: Path | None, *, disabled: bool) -> None:
    with _refused(NotFoundError, say=f"no user {username}"):
        _store(config).set_disabled(username, disabled)
    typer.echo(f"{'disabled' if disabled else 'enabled'} {username}")


@users_app.command("list")
def users_list(config: ConfigOpt = None) -> None:
    """List users and roles."""
    for u in _store(config).users():
        typer.echo(f"{u.username:24} {u.role.value:13} {'disabled' if u.disabled else 'active':9} {u.display_name}")


@tokens_app.command("create")
def tokens_create(
    username: str,
    label: Annotated[str, typer.Option(help="what the token is for")] = "api",
    days: Annotated[int, typer.Option(min=1, max=3660, help="lifetime in days")] = TOKEN_TTL_DAYS,
    config: ConfigOpt = None,
) -> None:
    """Create a bearer token acting as USERNAME (with that user's role); printed once, expires after --days."""
    with _refused(NotFoundError, say=f"no active user {username}"):
        token = _store(config).create_api_token(username, label, days)
    typer.echo(token)


@tokens_app.command("list")
def tokens_list(
    username: Annotated[str | None, typer.Option("--user", help="only this user's tokens")] = None,
    config: ConfigOpt = None,
) -> None:
    """List API tokens: id (for revoke), user, label, created, expires. Tokens themselves are never shown."""
    now_ms = int(time.time() * 1000)
    for t in _store(config).api_tokens(username):
        state = "expired" if t.expires_at_ms <= now_ms else "active"
        dates = f"created {_day(t.created_at_ms)}  expires {_day(t.expires_at_ms)}"
        typer.echo(f"{t.id}  {t.username:24} {t.label:24} {dates}  {state}")


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[str | None, typer.Argument(help="the id `tokens list` shows")] = None,
    username: Annotated[str | None, typer.Option("--user", help="revoke every token of this user")] = None,
    config: ConfigOpt = None,
) -> None:
    """Revoke one token by id, or all of a user's tokens with --user."""
    if (token_id is None) == (username is None):
        typer.echo("error: give a token id or --user, not both", err=True)
        raise typer.Exit(2)
    with _refused(UserError):
        n = _store(config).revoke_api_tokens(token_id=token_id, username=username)
    if n == 0:
        typer.echo("error: no such token", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {n} token(s)")


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")
