"""What the page modules share: rendering a template with the session, and form time fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from dispatch.context import ctx_of
from storage.accounts import Session


def render(request: Request, template: str, session: Session | None, status_code: int = 200, **ctx: Any) -> Response:
    console = ctx_of(request)
    response: Response = console.templates.TemplateResponse(
        request,
        template,
        {"session": session, "nav": template.removesuffix(".html"), **ctx},
        status_code=status_code,
    )
    return response


def datetime_local(value: str | None) -> datetime | None:
    """``<input type=datetime-local>`` value (UTC in this console) -> aware datetime; raises ValueError."""
    if not value:
        return None
    dt = datetime.fromisoformat(value)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
