"""Small helpers the API and the pages share: time conversion, the client address, the session cookie."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from dispatch.context import ConsoleContext


def to_ms(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


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
