"""`kuzet plates` (search, index, retention, watchlists) and `kuzet audit verify`.

The CLI is a thin shell over :func:`storage.plates.search.search_plates` and
the stores: the same checks (role, reason, bounds, audit first, fail closed)
apply here as in the web console. Who acts is authenticated, never stated:
an API token of a console user or, on PostgreSQL, a database login mapped to
one (:mod:`kuzet.commands.identity`); the role comes from that user's record.

Why one module over 400 lines: every ``kuzet plates`` subcommand (search, export, index, watch, retention,
watchlist, audit) shares the same options, store opening and authentication; each command body is a few
lines over :mod:`storage.plates`, :mod:`services` and :mod:`kuzet.commands.identity`.
"""

from __future__ import annotations

import json
import re
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated
from uuid import UUID

import typer

from core.clock import SystemClock
from core.redact import redact_text
from event_bus.interfaces import Publisher, Subscriber
from kuzet.commands.identity import ConsoleDbOpt, NotAuthenticated, TokenOpt, authenticate
from storage.plates.factory import PlateStores, is_postgres, open_stores, sqlite_path
from storage.plates.query import QueryError, SearchMode, parse_query
from storage.plates.search import Principal

app = typer.Typer(help="Plate history: search, indexer, retention, watchlists.", no_args_is_help=True)
watch_app = typer.Typer(help="Watchlists: plates that raise a watchlist_hit incident when read.", no_args_is_help=True)
audit_app = typer.Typer(help="The append-only, hash-chained audit log.", no_args_is_help=True)
app.add_typer(watch_app, name="watchlist")


@audit_app.callback()
def _audit_group() -> None:
    """The append-only, hash-chained audit log (a group even with one command, so `kuzet audit verify` works)."""


DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="KUZET_PLATES_DB",
        help="plate database: postgresql://... or sqlite:///path (required; or set KUZET_PLATES_DB)",
    ),
]
_RELATIVE = re.compile(r"^(\d+)([smhd])$")


def parse_time(text: str | None, now: datetime) -> datetime | None:
    """ISO-8601 (a zone is required; ``Z`` allowed) or a relative age like ``90m``, ``12h``, ``7d`` before now."""
    if text is None:
        return None
    m = _RELATIVE.match(text.strip())
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        return now - timedelta(**{unit: int(m.group(1))})
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is neither ISO-8601 nor an age like 7d / 12h") from None
    if t.tzinfo is None:
        raise typer.BadParameter(f"{text!r} needs a time zone (e.g. 2026-03-01T08:00:00+05:00 or ...Z)")
    return t


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code)


@contextmanager
def _audited(not_done: str, *, refused: type[Exception]) -> Iterator[None]:
    """The exit codes every audited command shares: 3 when the action was refused (the refusal is on the record),
    4 when it was not done because its audit record could not be written (fail closed). ``refused`` is the
    refusal the action raises; ``not_done`` starts the second message ("search not performed", "not changed")."""
    from storage.audit import AuditUnavailable

    try:
        yield
    except refused as exc:
        raise _fail(f"refused (audited): {exc}", 3) from None
    except AuditUnavailable as exc:
        raise _fail(f"{not_done}: the audit record could not be written ({exc})", 4) from None


def _open(db: str | None, *, create: bool = False) -> PlateStores:
    """The plate stores at ``--db``; no default, so a forgotten or mistyped database is an error, not a fresh
    empty one that answers "0 hits" or "audit chain ok: 0 rows". Only commands that set a database up
    (``migrate``, the indexer, the watcher) may create a missing SQLite file."""
    if not db:
        raise _fail("no plate database: pass --db postgresql://... or --db sqlite:///path, or set KUZET_PLATES_DB")
    if not create and not is_postgres(db) and not sqlite_path(db).is_file():
        raise _fail(
            f"plate database {sqlite_path(db)} does not exist; check --db / KUZET_PLATES_DB "
            "(`kuzet plates migrate --db ...` creates a new one)"
        )
    return open_stores(db)


@app.command("search")
def search_cmd(
    text: Annotated[
        str,
        typer.Argument(metavar="PLATE", help="plate (exact/fuzzy) or pattern (wildcard: * any run, ? one char)"),
    ],
    reason: Annotated[str | None, typer.Option("--reason", help="reason or case number (required, audited)")] = None,
    mode: Annotated[SearchMode, typer.Option(help="exact, wildcard or fuzzy")] = SearchMode.EXACT,
    since: Annotated[str | None, typer.Option(help="start: ISO time or age (7d); default until - 7 days")] = None,
    until: Annotated[str | None, typer.Option(help="end (exclusive): ISO time or age; default now")] = None,
    camera: Annotated[list[str] | None, typer.Option("--camera", help="only this camera (repeatable)")] = None,
    distance: Annotated[
        float,
        typer.Option(
            "--max-edits",
            "--distance",
            help="fuzzy: most edits (as the API's max_edits); OCR confusions such as O/0 count 0.3",
        ),
    ] = 1.0,
    limit: Annotated[int, typer.Option(min=1, help="hits per page")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="skip this many hits (next page)")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    token: TokenOpt = None,
    console_db: ConsoleDbOpt = None,
    db: DbOpt = None,
) -> None:
    """Search plate history (needs role investigator or admin and a reason; every search is audited)."""
    from storage.plates.search import AccessDenied, search_plates
    from storage.plates.store import StoreError

    now = SystemClock().now()
    stores = _open(db)
    url = str(db)
    try:
        with _audited("search not performed", refused=AccessDenied):
            principal = _principal(stores, url, token, console_db, "plate_search")
            query = parse_query(
                text=text,
                mode=mode,
                since=parse_time(since, now),
                until=parse_time(until, now),
                cameras=tuple(camera or ()),
                max_distance=distance,
                limit=limit,
                offset=offset,
            )
            result = search_plates(
                query,
                principal=principal,
                reason=reason,
                store=stores.history,
                audit=stores.audit,
            )
    except QueryError as exc:
        raise _fail(f"query error: {exc}") from None
    except StoreError as exc:
        raise _fail(f"plate history unavailable: {exc}", 5) from None
    finally:
        stores.close()
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    typer.echo(
        f"{len(result.hits)} hit(s)  [{result.query.since:%Y-%m-%d %H:%M} .. {result.query.until:%Y-%m-%d %H:%M} UTC]"
    )
    for h in result.hits:
        flag = " candidate" if h.is_candidate else ""
        dist = f"  d={h.distance:g}" if result.query.mode is SearchMode.FUZZY else ""
        typer.echo(
            f"{h.observed_at:%Y-%m-%d %H:%M:%S}  {h.camera_id:<20} {h.plate:<12} conf={h.confidence:.2f}{dist}{flag}"
            + (f"  {h.snapshot_url}" if h.snapshot_url else "")
        )
    if result.next_offset is not None:
        typer.echo(f"more: --offset {result.next_offset}")
    typer.echo(f"audit record #{result.audit_seq}")


@app.command("migrate")
def migrate_cmd(
    db: DbOpt = None,
    ahead: Annotated[int, typer.Option(min=0, max=60, help="day partitions to create ahead")] = 3,
) -> None:
    """Create tables, indexes, triggers and the coming days' partitions (idempotent)."""
    stores = _open(db, create=True)
    try:
        created = stores.history.ensure_partitions(SystemClock().now(), ahead)
    finally:
        stores.close()
    typer.echo("schema ready" + (f"; created {', '.join(created)}" if created else ""))


@app.command("retention")
def retention_cmd(
    days: Annotated[int, typer.Option(min=1, max=3650, help="keep reads this many days")],
    db: DbOpt = None,
    now: Annotated[str | None, typer.Option(help="pretend it is this time (ISO; tests and backfills)")] = None,
    ahead: Annotated[int, typer.Option(min=0, max=60, help="also create this many days of partitions ahead")] = 3,
) -> None:
    """Remove reads older than --days (PostgreSQL: drop whole day partitions; SQLite: delete)."""
    at = parse_time(now, SystemClock().now()) or SystemClock().now()
    stores = _open(db)
    try:
        report = stores.history.apply_retention(days, at)
        stores.history.ensure_partitions(at, ahead)
    finally:
        stores.close()
    dropped = ", ".join(report.partitions_dropped) or "none"
    deleted = "" if report.reads_deleted is None else f"; {report.reads_deleted} read(s) deleted"
    typer.echo(
        f"cutoff {report.cutoff:%Y-%m-%d %H:%M} UTC; partitions dropped: {dropped}{deleted}; "
        f"{report.plates_forgotten} plate(s) forgotten"
    )


def _stop_event() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


BusOpt = Annotated[str, typer.Option(help="local (one box) or kafka")]
BootstrapOpt = Annotated[
    str,
    typer.Option(
        envvar="KUZET_BUS__KAFKA__BOOTSTRAP_SERVERS", show_envvar=False, help="Kafka bootstrap, host:port[,...]"
    ),
]
LocalPathOpt = Annotated[str, typer.Option(help="local bus file")]


@app.command("index")
def index_cmd(
    db: DbOpt = None,
    bus: BusOpt = "local",
    bootstrap: BootstrapOpt = "127.0.0.1:9092",
    local_path: LocalPathOpt = "var/bus.sqlite3",
    batch_size: Annotated[int, typer.Option(min=1, max=50_000)] = 2000,
    metrics_port: Annotated[
        int, typer.Option(envvar="KUZET_METRICS_PORT", min=0, max=65535, help="/metrics /healthz /readyz; 0: off")
    ] = 9400,
    metrics_host: Annotated[str, typer.Option(help="address the metrics endpoints bind to")] = "127.0.0.1",
) -> None:
    """Run the plate indexer (consumer group kuzet-plate-indexer on kuzet.plates.v1) until SIGTERM."""
    from event_bus import topics
    from kuzet.service_metrics import indexer_server
    from services.plate_indexer import GROUP, IndexerStats, run_forever

    subscriber_factory, publisher = _bus(bus, bootstrap, local_path, GROUP, topics.PLATES)
    stores = _open(db, create=True)
    stop = _stop_event()
    stats = IndexerStats()
    server, on_step = indexer_server(stats, GROUP, metrics_host, metrics_port) if metrics_port else (None, None)
    try:
        stats = run_forever(
            subscriber_factory, stores.history, publisher, stop, batch_size=batch_size, on_step=on_step, stats=stats
        )
    finally:
        if server is not None:
            server.stop()
        publisher.close()
        stores.close()
    typer.echo(f"indexed {stats.stored}, duplicates {stats.duplicates}, dead-lettered {stats.dead_lettered}")


@app.command("watch")
def watch_cmd(
    db: DbOpt = None,
    bus: BusOpt = "local",
    bootstrap: BootstrapOpt = "127.0.0.1:9092",
    local_path: LocalPathOpt = "var/bus.sqlite3",
) -> None:
    """Run the watchlist matcher on kuzet.plates.v1, publishing watchlist_hit incidents, until SIGTERM."""
    from event_bus import topics
    from services.watchlist_alerts import GROUP, run_forever
    from storage.watchlist import WatchlistMatcher

    subscriber_factory, publisher = _bus(bus, bootstrap, local_path, GROUP, topics.PLATES, latest=True)
    stores = _open(db, create=True)
    stop = _stop_event()
    try:
        run_forever(subscriber_factory, publisher, WatchlistMatcher(stores.watchlist), stop)
    finally:
        publisher.close()
        stores.close()


def _bus(
    kind: str, bootstrap: str, local_path: str, group: str, topic: str, latest: bool = False
) -> tuple[Callable[[], Subscriber], Publisher]:
    """Subscriber factory and publisher for the transport the options name (event_bus.transport builds them)."""
    from core.config import BusConfig
    from event_bus.transport import open_publisher, subscriber_factory

    if kind not in ("local", "kafka"):
        raise typer.BadParameter("--bus must be local or kafka")
    from event_bus.kafka_security import env_fields

    kafka = {"bootstrap_servers": bootstrap, "client_id": group, **env_fields()}  # SASL/TLS: KUZET_BUS__KAFKA__*
    cfg = BusConfig.model_validate({"kind": kind, "kafka": kafka, "local_path": local_path})
    return subscriber_factory(cfg, [topic], group, from_beginning=not latest), open_publisher(cfg)


# ------------------------------------------------------------------ watchlists
def _principal(stores: PlateStores, url: str, token: str | None, console_db: str | None, action: str) -> Principal:
    """The authenticated console user, or exit 3 (the refusal is audited)."""
    try:
        return authenticate(token=token, console_db=console_db, plates_url=url, audit=stores.audit, action=action)
    except NotAuthenticated as exc:
        raise _fail(f"refused (audited): {exc}", 3) from None


def _changed(
    stores: PlateStores,
    principal: Principal,
    action: str,
    details: dict[str, object],
    reason: str,
    change: Callable[[], bool],
) -> bool:
    """A watchlist change on the record (refusal audited; outcome audited after the change)."""
    from storage.watchlist import WatchlistError, audited_change

    try:
        with _audited("not changed", refused=PermissionError):
            changed = audited_change(
                stores.audit, principal.user, principal.role, action, dict(details), SystemClock().now(), reason, change
            )
    except WatchlistError as exc:
        raise _fail(f"refused (audited): {exc}") from None
    return changed


@watch_app.command("add")
def watch_add(
    plate: Annotated[str, typer.Argument(help="plate to watch")],
    reason: Annotated[str, typer.Option("--reason", help="why (case number, warrant ...)")],
    expires: Annotated[str, typer.Option(help="ISO time, or a duration ahead like 30d / 12h")] = "30d",
    mode: Annotated[str, typer.Option(help="exact or fuzzy")] = "exact",
    distance: Annotated[float, typer.Option(help="fuzzy: weighted edit distance")] = 1.0,
    severity: Annotated[str, typer.Option(help="low, medium, high, critical")] = "high",
    token: TokenOpt = None,
    console_db: ConsoleDbOpt = None,
    db: DbOpt = None,
) -> None:
    """Add a plate to the watchlist (investigator or admin; audited)."""
    from storage.watchlist import WatchlistError, new_entry

    now = SystemClock().now()
    ago = parse_time(expires, now)
    assert ago is not None
    expires_at = now + (now - ago) if _RELATIVE.match(expires.strip()) else ago  # "30d" means 30 days ahead here
    if mode not in ("exact", "fuzzy") or severity not in ("low", "medium", "high", "critical"):
        raise _fail("mode must be exact|fuzzy and severity low|medium|high|critical")
    stores = _open(db)
    url = str(db)
    try:
        principal = _principal(stores, url, token, console_db, "watchlist_add")
        try:
            entry = new_entry(
                plate,
                reason=reason,
                created_by=principal.user,
                expires_at=expires_at,
                now=now,
                mode=mode,  # type: ignore[arg-type]
                max_distance=distance,
                severity=severity,  # type: ignore[arg-type]
            )
        except WatchlistError as exc:
            raise _fail(str(exc)) from None

        def add() -> bool:
            stores.watchlist.add(entry)
            return True

        _changed(stores, principal, "watchlist_add", entry.to_json(), reason, add)
    finally:
        stores.close()
    typer.echo(f"added {entry.id}  {entry.plate} ({entry.mode}) until {entry.expires_at:%Y-%m-%d %H:%M} UTC")


@watch_app.command("list")
def watch_list(
    show_all: Annotated[bool, typer.Option("--all", help="include expired and removed entries")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    db: DbOpt = None,
) -> None:
    """List watchlist entries (active ones unless --all)."""
    stores = _open(db)
    try:
        entries = stores.watchlist.entries(active_at=None if show_all else SystemClock().now())
    finally:
        stores.close()
    if as_json:
        typer.echo(json.dumps([e.to_json() for e in entries], indent=2))
        return
    for e in entries:
        state = "removed" if e.removed_at else ("expired" if e.expires_at <= datetime.now(UTC) else "active")
        typer.echo(f"{e.id}  {e.plate:<12} {e.mode:<5} {state:<7} until {e.expires_at:%Y-%m-%d %H:%M}  {e.reason}")


ChangeReasonOpt = Annotated[str, typer.Option("--reason", help="why (case closed, entered by mistake ...); audited")]


def _watch_change(
    action: str, entry_id: UUID, reason: str, token: str | None, console_db: str | None, db: str | None
) -> bool:
    """Authenticate, apply ``action`` (expire or remove) to the entry, audit its outcome; False if none changed."""
    stores = _open(db)
    try:
        principal = _principal(stores, str(db), token, console_db, f"watchlist_{action}")
        now = SystemClock().now()
        change = (
            (lambda: stores.watchlist.expire(entry_id, now))
            if action == "expire"
            else (lambda: stores.watchlist.remove(entry_id, now, principal.user))
        )
        return _changed(stores, principal, f"watchlist_{action}", {"id": str(entry_id)}, reason, change)
    finally:
        stores.close()


def _watch_change_command(action: str, done: str, missing: str, doc: str) -> None:
    """Register ``kuzet plates watch ACTION``: expire and remove differ only in the store call and their words."""

    def command(
        entry_id: Annotated[UUID, typer.Argument(help="entry id")],
        reason: ChangeReasonOpt,
        token: TokenOpt = None,
        console_db: ConsoleDbOpt = None,
        db: DbOpt = None,
    ) -> None:
        if not _watch_change(action, entry_id, reason, token, console_db, db):
            raise _fail(missing.format(entry_id), 1)
        typer.echo(f"{done} {entry_id}")

    command.__doc__ = doc
    watch_app.command(action)(command)


_watch_change_command(
    "expire", "expired", "no active entry {}", "Expire an entry now (it stops matching at once; kept for the record)."
)
_watch_change_command(
    "remove",
    "removed",
    "no entry {} (or already removed)",
    "Mark an entry removed (matchers drop it within their refresh interval, 5 s by default).",
)


# ------------------------------------------------------------------ audit
@audit_app.command("verify")
def audit_verify(
    db: DbOpt = None,
    anchor: Annotated[
        str | None, typer.Option(help="SEQ:HASH printed by an earlier verify (detects cut-off tail)")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="console YAML: check against the anchors it writes (dir, S3 bucket)"),
    ] = None,
) -> None:
    """Check the audit hash chain and its anchors outside the database; exit 1 and name the first bad row."""
    from dispatch.plates_adapter import anchor_sinks
    from kuzet.commands.console import load_settings
    from storage.audit import AuditUnavailable, verify

    anchors: list[tuple[int, str]] = []
    if anchor:
        seq, _, digest = anchor.partition(":")
        if not seq.isdigit() or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise _fail("--anchor must be SEQ:HASH (64 hex digits)")
        anchors.append((int(seq), digest))
    if config is not None:
        settings = load_settings(config)
        db = db or settings.plates_database or settings.database
        for sink in anchor_sinks(settings):
            try:
                anchors.extend((a.seq, a.hash) for a in sink.anchors())
            except Exception as exc:
                raise _fail(f"cannot read audit anchors from {sink.name}: {redact_text(str(exc))[:300]}", 4) from None
    stores = _open(db)
    try:
        report = verify(stores.audit, anchors=anchors)
    except AuditUnavailable as exc:
        raise _fail(str(exc), 4) from None
    finally:
        stores.close()
    if not report.ok:
        raise _fail(f"audit chain BROKEN at row {report.first_bad_seq}: {report.problem} ({report.checked} checked)", 1)
    typer.echo(
        f"audit chain ok: {report.checked} row(s), {len(anchors)} anchor(s) match; "
        f"head {report.head_seq}:{report.head_hash}"
    )
