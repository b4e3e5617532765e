"""Pages around the session: the console's static files, login and logout, the landing redirect, API docs."""

from __future__ import annotations

import secrets
from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from dispatch.api.common import client_address, session_cookie_kwargs
from dispatch.context import HERE, ctx_of, error_page
from dispatch.login_guard import LoginRefused
from dispatch.pages.common import render
from dispatch.security import (
    ANY_PAGE,
    LOGIN_CSRF_COOKIE,
    PUBLIC,
    SESSION_COOKIE,
    AuthFirstRoute,
    login_redirect_target,
    same_origin,
)
from storage.accounts import Role, Session

router = APIRouter(route_class=AuthFirstRoute)  # role checked before the body is read

STATIC_DIR = HERE / "static"
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png"}


@router.get("/static/{name}", dependencies=[Depends(PUBLIC)])
def static(name: Annotated[str, Path(pattern=r"^[a-z0-9_-]+\.(js|css|svg|png)$")]) -> Response:
    """The console's own JS/CSS (public: login needs the stylesheet; nothing secret is in them)."""
    path = (STATIC_DIR / name).resolve()
    if not path.is_relative_to(STATIC_DIR.resolve()) or not path.is_file():
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(
        path, media_type=STATIC_TYPES[FsPath(name).suffix], headers={"Cache-Control": "public, max-age=300"}
    )


@router.get("/login", dependencies=[Depends(PUBLIC)])
def login_page(request: Request, next: Annotated[str | None, Query(max_length=512)] = None) -> Response:
    token = secrets.token_urlsafe(24)
    resp = render(request, "login.html", None, login_csrf=token, next=login_redirect_target(next), error=None)
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/login", max_age=3600)
    return resp


_LOGIN_MESSAGES = {
    401: "Wrong user name or password.",
    429: "Too many failed logins. Wait a few minutes.",
    503: "The console is busy. Try again in a moment.",
}


@router.post("/login", dependencies=[Depends(PUBLIC)])
def login_submit(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    csrf_token: Annotated[str, Form(max_length=128)],
    next: Annotated[str, Form(max_length=512)] = "/",
) -> Response:
    ctx = ctx_of(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    # bytes, not str: compare_digest refuses non-ASCII text with a TypeError (that was a 500)
    if not cookie or not secrets.compare_digest(cookie.encode(), csrf_token.encode()) or not same_origin(request):
        return error_page(request, 403, "The login form expired or came from another site. Reload and try again.")

    def fail(message: str, status: int) -> Response:
        token = secrets.token_urlsafe(24)
        resp = render(
            request, "login.html", None, status, login_csrf=token, next=login_redirect_target(next), error=message
        )
        resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/login", max_age=3600)
        return resp

    try:
        user = ctx.limiter.authenticate(ctx.store, username, password, client_address(request))
    except LoginRefused as exc:
        return fail(_LOGIN_MESSAGES.get(exc.status, "Wrong user name or password."), exc.status)
    token, _ = ctx.store.create_session(user.username, ctx.settings.session_ttl_s)
    resp = RedirectResponse(login_redirect_target(next), status_code=303)
    resp.set_cookie(SESSION_COOKIE, token, **session_cookie_kwargs(ctx))
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return resp


@router.post("/logout")
def logout(request: Request, session: Annotated[Session, Depends(ANY_PAGE)]) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        ctx_of(request).store.delete_session(cookie)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


@router.get("/")
def home(session: Annotated[Session, Depends(ANY_PAGE)]) -> Response:
    """Dispatchers and admins land on the feed, investigators on plate search."""
    return RedirectResponse("/plates" if session.user.role is Role.INVESTIGATOR else "/feed", status_code=303)


@router.get("/docs")
@router.get("/api-docs")
def api_docs(request: Request, session: Annotated[Session, Depends(ANY_PAGE)]) -> Response:
    """A readable view of the OpenAPI document (rendered by our own JS; no CDN)."""
    return render(request, "api_docs.html", session)
