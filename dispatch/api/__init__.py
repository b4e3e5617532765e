"""JSON API (and the SSE feed): the console's actions for other systems of the operations centre.

One module per resource: :mod:`~dispatch.api.session` (login, logout, who am
I, meta), :mod:`~dispatch.api.incidents` (list, detail, actions, snapshot,
live feed), :mod:`~dispatch.api.cameras`, :mod:`~dispatch.api.plates`
(search, CSV, snapshot links) and :mod:`~dispatch.api.watchlist`.

Every route declares its roles with one :mod:`dispatch.security` dependency.
Request bodies are pydantic models with ``extra="forbid"`` and bounded
fields, so malformed or oversized input is a 4xx before any handler runs;
domain errors become HTTP answers in :mod:`dispatch.errors`, never in a route.
Responses never carry stream URLs, credentials or storage secrets: incidents
say whether they have a snapshot and the console serves it itself.
"""

from __future__ import annotations

from fastapi import APIRouter

from dispatch.api import cameras, incidents, plates, session, watchlist

router = APIRouter()
for _module in (session, incidents, cameras, plates, watchlist):
    router.include_router(_module.router)

__all__ = ["router"]
