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
import threading
import time
from collections import deque
from collections.abc import Callable
from urllib.parse import quote, urlsplit

from fastapi import Request
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
            form = await request.form()  # cached by Starlette: the route's Form() parameters still see it
            value = form.get("csrf_token")
            sent = value if isinstance(value, str) else None
    return sent is not None and hmac.compare_digest(sent.encode(), session.csrf_token.encode())


def session_from_request(request: Request) -> Session | None:
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
        self.audit_as = audit_as  # refusals of this route are written to the plates audit log under this action

    def __repr__(self) -> str:
        who = "public" if self.public else ",".join(sorted(r.value for r in self.roles))
        return f"Access({who}{', page' if self.page else ''})"

    async def __call__(self, request: Request) -> Session | None:
        if self.public:
            return None
        session = session_from_request(request)
        if session is None:
            nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise AuthError(401, "login required", page=self.page, login_next=nxt)
        if session.user.role not in self.roles:
            detail = f"role {session.user.role.value} may not use this"
            if self.audit_as is not None:
                _audit_refusal(request, session, self.audit_as, f"{detail}: {request.method} {request.url.path}")
            raise AuthError(403, detail, page=self.page)
        if request.method not in SAFE_METHODS and session.via == "session":
            if not same_origin(request):
                raise AuthError(403, "cross-origin request refused", page=self.page)
            if not await _csrf_ok(request, session):
                raise AuthError(403, "missing or wrong CSRF token", page=self.page)
        request.state.session = session
        return session


def _audit_refusal(request: Request, session: Session, action: str, detail: str) -> None:
    """Plate search and watchlist refusals are audited too; if that fails the answer is still 403."""
    plates = request.app.state.console.plates
    if plates is None:
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


class LoginLimiter:
    """Refuses logins for a user name after too many failures in a window (argon2 already slows each try)."""

    def __init__(self, attempts: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self._clock = clock
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str) -> deque[float]:
        q = self._fails.setdefault(key, deque())
        cutoff = self._clock() - self.window_s
        while q and q[0] < cutoff:
            q.popleft()
        return q

    def blocked(self, key: str) -> bool:
        with self._lock:
            return len(self._recent(key)) >= self.attempts

    def failed(self, key: str) -> None:
        with self._lock:
            self._recent(key).append(self._clock())
            if len(self._fails) > 10_000:  # bounded: forget the quietest names
                for k in [k for k, q in self._fails.items() if not q][:5000]:
                    del self._fails[k]

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._fails.pop(key, None)


# -- ASGI middleware (raw ASGI, so streaming responses like SSE pass through untouched) ---------------------------

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
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


class SecurityHeadersMiddleware:
    """Adds the security headers to every response, and no-store to everything but static assets."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _OVERRIDDEN]
                headers.extend(SECURITY_HEADERS)
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


_OVERRIDDEN = frozenset(k for k, _ in SECURITY_HEADERS) | {b"server"}


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
