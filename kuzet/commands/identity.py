"""Who runs a plate command: an authenticated console user, never a name and a role typed on the command line.

Why: the audit trail is only as good as the identity behind it. ``--user
mallory --role admin`` used to be believed. Now a command authenticates in
one of two ways, and the role always comes from the console's user record:

* an API token of a console user (``--token`` / ``KUZET_API_TOKEN``, from
  ``kuzet console tokens create``), checked like the web API checks it
  (unknown, expired, revoked or disabled: refused);
* on PostgreSQL, the database login itself: ``current_user`` must be an active
  console user of the same name (the operator maps database roles to people).

Anything else is refused, and the refusal is written to the audit log under
the name that was tried.
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from typing import Annotated, NoReturn

import typer

from storage.audit import AuditLog, AuditRecord, AuditUnavailable
from storage.plates.factory import is_postgres
from storage.plates.search import Principal

TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="KUZET_API_TOKEN",
        help="API token of a console user (kuzet console tokens create); prefer the environment variable",
        show_default=False,
    ),
]
ConsoleDbOpt = Annotated[
    str | None,
    typer.Option(
        "--console-db",
        envvar="KUZET_CONSOLE_DB",
        help="the console's user database; default: the plates database if PostgreSQL, else var/console.sqlite3",
    ),
]
DEFAULT_CONSOLE_DB = "var/console.sqlite3"


class NotAuthenticated(Exception):
    """The caller could not be tied to an active console user; the refusal is audited."""


def console_url(console_db: str | None, plates_url: str) -> str:
    if console_db:
        return console_db
    return plates_url if is_postgres(plates_url) else DEFAULT_CONSOLE_DB


def _database_login(plates_url: str) -> str:
    import psycopg

    with psycopg.connect(plates_url, connect_timeout=10) as conn:
        row = conn.execute("SELECT current_user").fetchone()
    return str(row[0]) if row else ""


def authenticate(
    *, token: str | None, console_db: str | None, plates_url: str, audit: AuditLog, action: str
) -> Principal:
    """The console user behind this command; raises :class:`NotAuthenticated` after auditing the refusal."""
    from storage.workflow import open_workflow_store

    store = open_workflow_store(console_url(console_db, plates_url).removeprefix("sqlite:///"))
    try:
        if token:
            session = store.token_session(token.strip())
            if session is None:
                _refuse(audit, action, "token", "the API token is unknown, expired or revoked")
            return Principal(session.user.username, session.user.role.value)
        if is_postgres(plates_url):
            login = _database_login(plates_url)
            user = store.user(login)
            if user is None or user.disabled:
                _refuse(audit, action, login, f"database login {login!r} is not an active console user")
            return Principal(user.username, user.role.value)
        _refuse(audit, action, getpass.getuser(), "authenticate with --token or KUZET_API_TOKEN")
    finally:
        store.close()


def _refuse(audit: AuditLog, action: str, tried: str, message: str) -> NoReturn:
    record = AuditRecord(
        actor=tried[:128] or "unknown",
        role="none",
        action=action,
        outcome="refused",
        details={"error": message, "via": "cli"},
    )
    try:
        audit.append(record, datetime.now(UTC))
    except AuditUnavailable as exc:
        raise NotAuthenticated(f"{message} (and the refusal could not be audited: {exc})") from None
    raise NotAuthenticated(message)
