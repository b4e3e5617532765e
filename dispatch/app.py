"""The console's ASGI application: :func:`create_app` wires store, feed, snapshots, plates and routes.

The routes live in :mod:`dispatch.api` (JSON, in the OpenAPI document) and
:mod:`dispatch.pages` (HTML); both declare their roles with
:mod:`dispatch.security` and read what they share from
:mod:`dispatch.context`. Exceptions become HTTP answers in
:mod:`dispatch.errors`, registered here once. This module holds the lifespan
that starts and stops the bus consumer, and the middleware.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.templating import Jinja2Templates

from core.config import ConfigError, resolve_secret
from dispatch import api, pages
from dispatch.bus_ingest import BusIngestor, console_subscriber
from dispatch.camera_board import CameraBoard
from dispatch.context import API_PREFIX, HERE, ConsoleContext
from dispatch.errors import install_error_handlers
from dispatch.evidence import evidence_service
from dispatch.evidence import router as evidence_router
from dispatch.feed import FeedHub
from dispatch.feed_cards import router as feed_cards_router
from dispatch.line_count_ingest import LineCountIngestor, line_count_subscriber
from dispatch.line_counts import LineCountBoard
from dispatch.live import router as live_router
from dispatch.login_guard import LoginGuard, slots_for_budget
from dispatch.plates import PlateService
from dispatch.plates_adapter import anchored, open_plate_service
from dispatch.security import BodyLimitMiddleware, SecurityHeadersMiddleware
from dispatch.settings import ConsoleSettings
from storage.snapshot_stores import open_snapshot_store
from storage.snapshots import SnapshotStore
from storage.workflow import WorkflowStore, open_workflow_store

log = logging.getLogger(__name__)


def _snapshot_store(settings: ConsoleSettings) -> SnapshotStore | None:
    """The store the console reads snapshots from; None (no pictures, cards still work) when it cannot open."""
    try:
        return open_snapshot_store(settings.storage)
    except Exception as exc:  # any failure to open only costs the pictures; the reason is logged
        log.warning("console: snapshot store unavailable: %s", type(exc).__name__)
        return None


def link_key(settings: ConsoleSettings) -> bytes:
    """The snapshot-link signing key: from the secret reference (shared by replicas), else random per process."""
    if settings.link_key is None:
        log.warning("console: link_key not set; snapshot links only verify on this process (one replica)")
        return secrets.token_bytes(32)
    value = resolve_secret(settings.link_key).get_secret_value().encode()
    if len(value) < 16:
        raise ConfigError(f"link_key {settings.link_key}: at least 16 bytes")
    return hashlib.sha256(b"kuzet-snapshot-links\n" + value).digest()


def create_app(
    settings: ConsoleSettings | None = None,
    *,
    store: WorkflowStore | None = None,
    snapshots: SnapshotStore | None = None,
    plates: PlateService | None = None,
) -> FastAPI:
    """Build the console app. ``store``/``snapshots``/``plates`` default to what ``settings`` names.

    The bus consumer starts with the app's lifespan when ``settings.consume`` is true.
    """
    settings = settings or ConsoleSettings()
    store = store or open_workflow_store(settings.database)
    hub = FeedHub(store)
    line_counts = LineCountBoard(settings.line_counts_max_cameras)
    board = CameraBoard(settings.camera_groups, int(settings.camera_stale_after_s * 1000), line_counts=line_counts)
    hub.camera_observers.append(board.update)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    ctx = ConsoleContext(
        settings=settings,
        store=store,
        hub=hub,
        templates=templates,
        limiter=LoginGuard(
            attempts=settings.login_attempts,
            address_attempts=settings.login_address_attempts,
            window_s=settings.login_window_s,
            slots=slots_for_budget(settings.login_memory_mib, store.password_memory_kib),
            wait_s=settings.login_wait_s,
        ),
        board=board,
        snapshots=snapshots if snapshots is not None else _snapshot_store(settings),
        plates=plates if plates is not None else open_plate_service(settings),
        link_key=link_key(settings),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub.attach(asyncio.get_running_loop())
        follower = notifier = None
        if store.dialect == "postgres":  # replicas may share this database: fan changes out to all of them
            from dispatch.replica_sync import ChangeFollower, ChangeNotifier

            notifier = ChangeNotifier(settings.database)
            hub.notifier = notifier
            follower = ctx.extra["replica_sync"] = ChangeFollower(settings.database, store, hub).start()
        if settings.consume:
            make_subscriber, dlq = console_subscriber(settings)
            evidence = ctx.extra.get("evidence")
            record = evidence.record_events if evidence is not None else None
            ctx.ingestor = BusIngestor(make_subscriber, dlq, store, hub, on_incidents=record).start()
            make_counts, counts_dlq = line_count_subscriber(settings)
            ctx.extra["line_counts"] = LineCountIngestor(
                make_counts, counts_dlq, line_counts, lambda _cameras: hub.announce_camera_changes()
            ).start()
        try:
            yield
        finally:
            if ctx.ingestor is not None:
                ctx.ingestor.stop()
                ctx.ingestor = None
            counts_reader = ctx.extra.pop("line_counts", None)
            if counts_reader is not None:
                counts_reader.stop()
            if follower is not None and notifier is not None:
                follower.stop()
                notifier.close()
                hub.notifier = None

    app = FastAPI(
        title="Kuzet dispatch console API",
        version="1",
        description=(
            "Incidents, their workflow, camera health, plate search and watchlists. Authenticate with a session "
            "(POST /api/session, then send the X-CSRF-Token header on state-changing requests) or with a bearer "
            "token (`kuzet console tokens create`)."
        ),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served by an authenticated route instead (dispatch.api.session)
        lifespan=lifespan,
    )
    app.state.console = ctx
    evidence = ctx.extra["evidence"] = evidence_service(settings, ctx.snapshots, ctx.link_key)
    if evidence is not None and evidence.audit is not None:  # evidence views are anchored like plate searches
        evidence.audit = anchored(evidence.audit, settings)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.cookie_secure)
    install_error_handlers(app)
    app.include_router(api.router, prefix=API_PREFIX)
    app.include_router(evidence_router, prefix=API_PREFIX)
    app.include_router(feed_cards_router, prefix=API_PREFIX)
    app.include_router(live_router, prefix=API_PREFIX)
    app.include_router(pages.router)
    return app


__all__ = ["create_app"]
