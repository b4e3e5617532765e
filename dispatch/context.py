"""What every console route shares: the :class:`ConsoleContext` on ``app.state.console`` and the error page.

A module of its own so that the app, the API routes, the page routes and the
error handlers all import it and none of them imports another (no circles).
"""

from __future__ import annotations

import fnmatch
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from fastapi.templating import Jinja2Templates

from dispatch.bus_ingest import BusIngestor
from dispatch.camera_board import CameraBoard
from dispatch.feed import FeedHub
from dispatch.login_guard import LoginGuard
from dispatch.plates import PlateService
from dispatch.settings import ConsoleSettings
from storage.snapshots import SnapshotStore
from storage.workflow import WorkflowStore

HERE = Path(__file__).parent
API_PREFIX = "/api"


@dataclass
class ConsoleContext:
    """Everything a route needs, in one place (``request.app.state.console``)."""

    settings: ConsoleSettings
    store: WorkflowStore
    hub: FeedHub
    templates: Jinja2Templates
    limiter: LoginGuard
    board: CameraBoard  # the camera board's index, kept current by the hub's camera observer
    snapshots: SnapshotStore | None = None
    plates: PlateService | None = None
    ingestor: BusIngestor | None = None
    link_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))  # signs snapshot links
    extra: dict[str, Any] = field(default_factory=dict)

    def groups_of(self, camera_id: str) -> list[str]:
        """Camera groups (configured glob patterns) a camera belongs to."""
        return [
            name
            for name, patterns in self.settings.camera_groups.items()
            if any(fnmatch.fnmatchcase(camera_id, p) for p in patterns)
        ]


def ctx_of(request: Request) -> ConsoleContext:
    ctx: ConsoleContext = request.app.state.console
    return ctx


def wants_json(request: Request) -> bool:
    return request.url.path.startswith(API_PREFIX + "/") or "application/json" in request.headers.get("accept", "")


def error_page(request: Request, status: int, message: str) -> Response:
    session = getattr(request.state, "session", None)
    response: Response = ctx_of(request).templates.TemplateResponse(
        request, "error.html", {"status": status, "message": message, "session": session}, status_code=status
    )
    return response
