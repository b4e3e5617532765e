"""The console's ASGI application: :func:`create_app` wires store, feed, snapshots, plates and routes.

The routes themselves live in :mod:`dispatch.routes_api` (JSON, in the OpenAPI
document) and :mod:`dispatch.routes_pages` (HTML); both declare their roles
with :mod:`dispatch.security`. This module holds what they share: the
:class:`ConsoleContext` on ``app.state.console``, the lifespan that starts and
stops the bus consumer, middleware, and the error handlers that turn
exceptions into clear 4xx answers without echoing input back.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from dispatch.evidence import evidence_service
from dispatch.evidence import router as evidence_router
from dispatch.feed import BusIngestor, FeedHub, subscriber_factory
from dispatch.plates import PlateService, default_plate_service
from dispatch.security import AuthError, BodyLimitMiddleware, LoginLimiter, SecurityHeadersMiddleware, login_url
from dispatch.settings import ConsoleSettings
from storage.snapshots import SnapshotStore
from storage.db import NotFoundError
from storage.incident_rules import ConflictError, InvalidInput, TransitionError
from storage.workflow import WorkflowStore, open_workflow_store

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
API_PREFIX = "/api"


@dataclass
class ConsoleContext:
    """Everything a route needs, in one place (``request.app.state.console``)."""

    settings: ConsoleSettings
    store: WorkflowStore
    hub: FeedHub
    templates: Jinja2Templates
    limiter: LoginLimiter
    snapshots: SnapshotStore | None = None
    plates: PlateService | None = None
    ingestor: BusIngestor | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def groups_of(self, camera_id: str) -> list[str]:
        """Camera groups (configured glob patterns) a camera belongs to."""
        return [
            name
            for name, patterns in self.settings.camera_groups.items()
            if any(fnmatch.fnmatchcase(camera_id, p) for p in patterns)
        ]


def _snapshot_store(settings: ConsoleSettings) -> SnapshotStore | None:
    """The store the console reads snapshots from; None (no pictures, cards still work) when it cannot open."""
    try:
        if settings.storage.kind == "s3":
            from storage.s3_store import S3SnapshotStore

            return S3SnapshotStore(settings.storage.s3)
        from storage.local_store import LocalSnapshotStore

        return LocalSnapshotStore(settings.storage.local_dir)
    except Exception as exc:
        log.warning("console: snapshot store unavailable: %s", type(exc).__name__)
        return None


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
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    ctx = ConsoleContext(
        settings=settings,
        store=store,
        hub=hub,
        templates=templates,
        limiter=LoginLimiter(settings.login_attempts, settings.login_window_s),
        snapshots=snapshots if snapshots is not None else _snapshot_store(settings),
        plates=plates if plates is not None else default_plate_service(settings),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub.attach(asyncio.get_running_loop())
        if settings.consume:
            make_subscriber, dlq = subscriber_factory(settings)
            evidence = ctx.extra.get("evidence")
            record = evidence.record_events if evidence is not None else None
            ctx.ingestor = BusIngestor(make_subscriber, dlq, store, hub, on_incidents=record).start()
        try:
            yield
        finally:
            if ctx.ingestor is not None:
                ctx.ingestor.stop()
                ctx.ingestor = None

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
        openapi_url=None,  # served by an authenticated route instead (dispatch.routes_api)
        lifespan=lifespan,
    )
    app.state.console = ctx
    ctx.extra["evidence"] = evidence_service(settings, ctx.snapshots)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware)
    _install_error_handlers(app)

    from dispatch import routes_api, routes_pages

    app.include_router(routes_api.router, prefix=API_PREFIX)
    app.include_router(evidence_router, prefix=API_PREFIX)
    app.include_router(routes_pages.router)
    return app


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith(API_PREFIX + "/") or "application/json" in request.headers.get("accept", "")


def error_page(request: Request, status: int, message: str) -> Response:
    ctx: ConsoleContext = request.app.state.console
    session = getattr(request.state, "session", None)
    return ctx.templates.TemplateResponse(
        request, "error.html", {"status": status, "message": message, "session": session}, status_code=status
    )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AuthError)
    async def _auth(request: Request, exc: AuthError) -> Response:
        if exc.page and exc.status == 401:
            return RedirectResponse(login_url(exc.login_next), status_code=303)
        if exc.page:
            return error_page(request, exc.status, exc.detail)
        headers = {"WWW-Authenticate": 'Bearer realm="kuzet"'} if exc.status == 401 else None
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return JSONResponse({"detail": "request body is not valid JSON"}, status_code=400)
        # loc + msg only: never echo the submitted values (they may hold markup or secrets).
        detail = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))[:200]} for e in errors[:20]]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(NotFoundError)
    async def _not_found(request: Request, exc: NotFoundError) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": "no such incident"}, status_code=404)
        return error_page(request, 404, "No such incident.")

    @app.exception_handler(TransitionError)
    async def _transition(request: Request, exc: TransitionError) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(ConflictError)
    async def _conflict(request: Request, exc: ConflictError) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(InvalidInput)
    async def _bad_input(request: Request, exc: InvalidInput) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if _wants_json(request) or exc.status_code not in (404, 405):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        return error_page(request, exc.status_code, "Not found." if exc.status_code == 404 else str(exc.detail))


__all__ = ["ConsoleContext", "HTMLResponse", "create_app", "error_page"]
