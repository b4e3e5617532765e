"""Who may call what: the one route dependency that declares a route's roles, CSRF, headers and body limits.

Why one dependency class: every route names its audience with exactly one
:class:`Access` (``Depends(DISPATCH_API)`` and friends), so a test can walk
``app.routes`` and prove that none is open by accident; a route without an
``Access`` fails that test, and a public route has to say ``PUBLIC`` out loud.

Authentication is either a session cookie (browsers; HttpOnly, SameSite=Strict,
and every state-changing request must also carry the session's CSRF token in
``X-CSRF-Token`` or a ``csrf_token`` form field, and a same-origin ``Origin``
when the browser sends one) or a bearer token (other systems; no ambient
credential, so no CSRF). Pages answer an anonymous visitor with a redirect to
the login page and a wrong role with a 403 page; API routes answer 401/403 JSON.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storage.accounts import Role, Session

log = logging.getLogger(__name__)

SESSION_COOKIE = "kuzet_session"
LOGIN_CSRF_COOKIE = "kuzet_login_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class AuthError(Exception):
    """Raised by :class:`Access`; the app turns it into 401/403 JSON or a login redirect / 403 page."""

    def __init__(self, status: int, detail: str, *, page: bool, login_next: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.page = page
        self.login_next = login_next


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another origin (``Origin``, else ``Referer``)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return source is None
    parts = urlsplit(source)
    host = request.headers.get("host", "")
    return parts.netloc == host and parts.scheme in ("http", "https")


async def _csrf_ok(request: Request, session: Session) -> bool:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            try:
                await request.body()  # cached first, so the route can still read the body after the form parse
                form = await request.form()  # cached by Starlette: the route's Form() parameters still see it
            except Exception:  # a malformed body has no token in it (multipart parse errors, bad encoding)
                return False
            value = form.get("csrf_token")
            sent = value if isinstance(value, str) else None
    return sent is not None and hmac.compare_digest(sent.encode(), session.csrf_token.encode())


def session_from_request(request: Request) -> Session | None:
    """The caller's session or token, looked up in the database: blocking, so call it off the event loop."""
    store = request.app.state.console.store
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        token = auth[7:].strip()
        return store.token_session(token) if token else None
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        s: Session | None = store.session(cookie)
        return s
    return None


class Access:
    """The role declaration of a route (see the module docstring). Returns the caller's session, or None if public."""

    def __init__(self, *roles: Role, public: bool = False, page: bool = False, audit_as: str | None = None) -> None:
        if public and roles:
            raise ValueError("a public route names no roles")
        if not public and not roles:
            raise ValueError("name the roles, or say public=True")
        self.roles = frozenset(roles)
        self.public = public
        self.page = page
        # Every refusal by role is written to the audit log, under this action ("access" unless the route says).
        self.audit_as = audit_as or "access"

    def __repr__(self) -> str:
        who = "public" if self.public else ",".join(sorted(r.value for r in self.roles))
        return f"Access({who}{', page' if self.page else ''})"

    async def __call__(self, request: Request) -> Session | None:
        if self.public:
            return None
        if getattr(request.state, "access_checked", None) is self:  # already passed in AuthFirstRoute
            checked: Session = request.state.session
            return checked
        # A database lookup (it waits on the store lock): off the loop, so SSE streams keep flowing meanwhile.
        session = await run_in_threadpool(session_from_request, request)
        if session is None:
            nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise AuthError(401, "login required", page=self.page, login_next=nxt)
        if session.user.role not in self.roles:
            detail = f"role {session.user.role.value} may not use this"
            what = f"{detail}: {request.method} {request.url.path}"
            await run_in_threadpool(_audit_refusal, request, session, self.audit_as, what)
            raise AuthError(403, detail, page=self.page)
        if request.method not in SAFE_METHODS and session.via == "session":
            if not same_origin(request):
                raise AuthError(403, "cross-origin request refused", page=self.page)
            if not await _csrf_ok(request, session):
                raise AuthError(403, "missing or wrong CSRF token", page=self.page)
        request.state.session = session
        request.state.access_checked = self
        return session


def access_of(route: APIRoute) -> Access | None:
    """The :class:`Access` a route declares (the first one among its dependencies)."""
    for dep in route.dependant.dependencies:
        if isinstance(dep.call, Access):
            return dep.call
    return None


class AuthFirstRoute(APIRoute):
    """A route that checks its :class:`Access` before FastAPI reads the request body.

    Why: FastAPI parses a JSON or form body before it runs any dependency, so a caller without the role
    got "400 not valid JSON" instead of 401/403: the route answered someone it should not talk to.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        access = access_of(self)
        if access is None or access.public:
            return handler

        async def auth_first(request: Request) -> Response:
            if request.method not in SAFE_METHODS:
                await access(request)
            return await handler(request)

        return auth_first


def _audit_refusal(request: Request, session: Session, action: str, detail: str) -> None:
    """Every refusal by role is audited; without an audit log, or if writing fails, it is logged (still 403)."""
    plates = request.app.state.console.plates
    if plates is None:
        log.warning("refused %s (%s) for %s; no audit log configured", action, detail, session.user.username)
        return
    try:
        plates.audit_refused(user=session.user.username, role=session.user.role.value, action=action, detail=detail)
    except Exception as exc:
        log.warning("could not audit a refused %s: %s", action, type(exc).__name__)


PUBLIC = Access(public=True)
ANY_API = Access(Role.DISPATCHER, Role.INVESTIGATOR, Role.ADMIN)
ANY_PAGE = Access(Role.DISPATCHER, Role.INVESTIGATOR, Role.ADMIN, page=True)
DISPATCH_API = Access(Role.DISPATCHER, Role.ADMIN)
DISPATCH_PAGE = Access(Role.DISPATCHER, Role.ADMIN, page=True)
INVESTIGATE_API = Access(Role.INVESTIGATOR, Role.ADMIN, audit_as="plate_search")
INVESTIGATE_PAGE = Access(Role.INVESTIGATOR, Role.ADMIN, page=True, audit_as="plate_search")
ADMIN_API = Access(Role.ADMIN)


def login_redirect_target(nxt: str | None) -> str:
    """Only local paths may follow a login (no open redirect)."""
    if not nxt or not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt:
        return "/"
    return nxt


def login_url(nxt: str | None) -> str:
    return "/login?next=" + quote(login_redirect_target(nxt), safe="/")


# -- ASGI middleware (raw ASGI, so streaming responses like SSE pass through untouched) ---------------------------

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
    "connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),  # "no-referrer" would make browsers send Origin: null
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)


HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


class SecurityHeadersMiddleware:
    """Adds the security headers to every response, and no-store to everything but static assets.

    ``hsts`` (on whenever cookies are Secure, i.e. everywhere but loopback) tells browsers to use HTTPS only.
    """

    def __init__(self, app: ASGIApp, hsts: bool = True) -> None:
        self.app = app
        self.headers = (*SECURITY_HEADERS, HSTS) if hsts else SECURITY_HEADERS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _OVERRIDDEN]
                headers.extend(self.headers)
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


_OVERRIDDEN = frozenset(k for k, _ in SECURITY_HEADERS) | {b"server", HSTS[0]}


class BodyLimitMiddleware:
    """413 for a request body over ``max_bytes``, whether it says so in Content-Length or streams past it.

    When a streamed body passes the limit, the 413 is sent at once and the app is told the client went
    away, so it stops reading; whatever it answers after that is dropped.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = True
                if too_big:
                    await _send_413(send, self.max_bytes)
                    return
        seen = 0
        started = False
        overflow = False

        async def limited_receive() -> Message:
            nonlocal seen, overflow, started
            if overflow:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    overflow = True
                    if not started:
                        started = True
                        await _send_413(send, self.max_bytes)
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if overflow:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except Exception:
            if not overflow:
                raise


async def _send_413(send: Send, limit: int) -> None:
    body = b'{"detail":"request body too large (limit ' + str(limit).encode() + b' bytes)"}'
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
