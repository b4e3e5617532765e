"""HTML pages: server-rendered shells (Jinja2, autoescaped) plus small vanilla JS files for live parts.

One module per area: :mod:`~dispatch.pages.auth` (static files, login,
logout, landing, API docs), :mod:`~dispatch.pages.incidents` (feed, incident
list and detail, camera board) and :mod:`~dispatch.pages.plates` (plate
search, CSV export, watchlist).

Pages take the same role declarations as the API, but answer an anonymous
visitor with a redirect to the login page and a wrong role with a 403 page.
Forms carry the session's CSRF token; the JS sends it as ``X-CSRF-Token``.
Nothing user-supplied is ever marked safe: notes, names and reasons are text.
"""

from __future__ import annotations

from fastapi import APIRouter

from dispatch.pages import auth, incidents, plates

router = APIRouter(include_in_schema=False)
for _module in (auth, incidents, plates):
    router.include_router(_module.router)

__all__ = ["router"]
