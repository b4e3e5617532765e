"""Small helpers the API and the pages share: time conversion, incident ids, the session cookie."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from dispatch.context import ConsoleContext
from storage.db import NotFoundError


def to_ms(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def valid_incident_id(incident_id: str) -> str:
    """Normalised UUID text, or NotFoundError (an id that cannot exist is simply not found)."""
    try:
        return str(uuid.UUID(incident_id))
    except (ValueError, AttributeError):
        raise NotFoundError(incident_id) from None


def client_address(request: Request) -> str:
    """The peer address the login limits are kept for (behind a proxy, run uvicorn with --proxy-headers)."""
    return request.client.host if request.client else "unknown"


def session_cookie_kwargs(ctx: ConsoleContext) -> dict[str, Any]:
    return {
        "httponly": True,
        "samesite": "strict",
        "secure": ctx.settings.cookie_secure,
        "path": "/",
        "max_age": ctx.settings.session_ttl_s,
    }
