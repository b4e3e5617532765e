"""Exception -> HTTP answer, registered once on the app: routes raise domain errors and never map them.

JSON for the API (and for clients that ask for JSON), the error page for the
HTML pages. Answers say what went wrong without echoing input back.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from dispatch.context import error_page, wants_json
from dispatch.plates import PlateAccessError, PlateQueryError, PlateUnavailable, WatchEntryNotFound
from dispatch.security import AuthError, login_url
from storage.db import NotFoundError
from storage.incident_rules import ConflictError, InvalidInput, TransitionError

# Domain errors that mean the same on every route: status, and the page text when the answer is HTML
# (None: the exception's own message, which is written for the user).
_STATUS: dict[type[Exception], tuple[int, str | None]] = {
    TransitionError: (409, None),
    ConflictError: (409, None),
    InvalidInput: (422, None),
    PlateQueryError: (400, None),
    PlateAccessError: (403, None),
    PlateUnavailable: (503, None),
    WatchEntryNotFound: (404, "No such watchlist entry."),
}


async def _domain(request: Request, exc: Exception) -> Response:
    status, page_text = next(v for t, v in _STATUS.items() if isinstance(exc, t))
    message = "no such watchlist entry" if isinstance(exc, WatchEntryNotFound) else str(exc)
    if wants_json(request):
        return JSONResponse({"detail": message}, status_code=status)
    return error_page(request, status, page_text or message)


async def _auth(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthError)
    if exc.page and exc.status == 401:
        return RedirectResponse(login_url(exc.login_next), status_code=303)
    if exc.page:
        return error_page(request, exc.status, exc.detail)
    headers = {"WWW-Authenticate": 'Bearer realm="kuzet"'} if exc.status == 401 else None
    return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse({"detail": "request body is not valid JSON"}, status_code=400)
    # loc + msg only: never echo the submitted values (they may hold markup or secrets).
    detail = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))[:200]} for e in errors[:20]]
    return JSONResponse({"detail": detail}, status_code=422)


async def _not_found(request: Request, exc: Exception) -> Response:
    if wants_json(request):
        return JSONResponse({"detail": "no such incident"}, status_code=404)
    return error_page(request, 404, "No such incident.")


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if wants_json(request) or exc.status_code not in (404, 405):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    return error_page(request, exc.status_code, "Not found." if exc.status_code == 404 else str(exc.detail))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AuthError, _auth)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(StarletteHTTPException, _http)
    for exc_type in _STATUS:
        app.add_exception_handler(exc_type, _domain)
