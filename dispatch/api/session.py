"""Session and meta routes: log in and out, who am I, liveness, the OpenAPI document, console internals."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from dispatch.api.common import client_address, session_cookie_kwargs
from dispatch.context import ctx_of
from dispatch.login_guard import LoginRefused
from dispatch.readiness import readiness
from dispatch.security import ADMIN_API, ANY_API, PUBLIC, SESSION_COOKIE, AuthError, AuthFirstRoute, same_origin
from storage.accounts import Role, Session

router = APIRouter(route_class=AuthFirstRoute)  # role checked before the body is read


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class MeOut(BaseModel):
    username: str
    role: Role
    display_name: str
    csrf_token: str


@router.get("/health", dependencies=[Depends(PUBLIC)], tags=["meta"])
def health() -> dict[str, bool]:
    """Liveness: the process serves HTTP (restart it if not). Says nothing about the internals."""
    return {"ok": True}


@router.get("/ready", dependencies=[Depends(PUBLIC)], tags=["meta"])
def ready(request: Request) -> JSONResponse:
    """Readiness: the database answers and the bus consumer is polling; 503 takes the replica out of rotation."""
    state = readiness(ctx_of(request))
    return JSONResponse(state, status_code=200 if state["ready"] else 503)


@router.post("/session", dependencies=[Depends(PUBLIC)], tags=["session"], response_model=MeOut)
def login(body: LoginIn, request: Request, response: Response) -> MeOut:
    """Log in with a password; sets the session cookie and returns the CSRF token for later writes."""
    ctx = ctx_of(request)
    if not same_origin(request):
        raise AuthError(403, "cross-origin login refused", page=False)
    try:
        user = ctx.limiter.authenticate(ctx.store, body.username, body.password, client_address(request))
    except LoginRefused as exc:
        if exc.status == 401:
            raise AuthError(401, exc.message, page=False) from None
        raise HTTPException(exc.status, exc.message) from None
    token, session = ctx.store.create_session(user.username, ctx.settings.session_ttl_s)
    response.set_cookie(SESSION_COOKIE, token, **session_cookie_kwargs(ctx))
    return MeOut(username=user.username, role=user.role, display_name=user.display_name, csrf_token=session.csrf_token)


@router.delete("/session", tags=["session"])
def logout(request: Request, response: Response, session: Annotated[Session, Depends(ANY_API)]) -> dict[str, bool]:
    """End this session."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        ctx_of(request).store.delete_session(cookie)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"ok": True}


@router.get("/me", tags=["session"], response_model=MeOut)
def me(session: Annotated[Session, Depends(ANY_API)]) -> MeOut:
    """Who is calling, and the CSRF token of the session."""
    u = session.user
    return MeOut(username=u.username, role=u.role, display_name=u.display_name, csrf_token=session.csrf_token)


@router.get("/openapi.json", tags=["meta"], include_in_schema=False)
def openapi(request: Request, session: Annotated[Session, Depends(ANY_API)]) -> JSONResponse:
    """The OpenAPI document of this API (for logged-in users and token holders)."""
    return JSONResponse(request.app.openapi())


@router.get("/status", tags=["meta"])
def status(request: Request, session: Annotated[Session, Depends(ADMIN_API)]) -> dict[str, Any]:
    """Console internals for operators: bus consumer counters and open feed connections."""
    ctx = ctx_of(request)
    ing = ctx.ingestor
    return {
        "bus": ctx.settings.bus.kind,
        "consumer_group": ctx.settings.consumer_group,
        "ingested": ing.ingested if ing else 0,
        "consumer_errors": ing.errors if ing else 0,
        "last_error": ing.last_error if ing else None,
        "feed_connections": ctx.hub.connections,
        "feed_published": ctx.hub.published,
        "feed_overflows": ctx.hub.overflows,
        "rev": ctx.store.current_rev(),
    }
