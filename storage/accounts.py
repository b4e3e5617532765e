"""Console accounts: users, their roles and password hashes, login sessions and API tokens.

Passwords are argon2id hashes (argon2-cffi); session and API tokens are
random and only their sha256 is stored, so a leaked database holds nothing
that logs anyone in. A wrong user name costs the same hash verification as a
wrong password, so timing does not tell which one failed.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from storage.db import Cursor, Database, NotFoundError, Store

__all__ = ["TOKEN_TTL_DAYS", "AccountStore", "ApiToken", "Role", "Session", "User", "UserError", "is_active_with_role"]


class Role(StrEnum):
    DISPATCHER = "dispatcher"
    INVESTIGATOR = "investigator"
    ADMIN = "admin"


class UserError(ValueError):
    """A user cannot be created or changed as asked (bad name, duplicate, unknown role)."""


USERNAME_RE = re.compile(r"^[a-z][a-z0-9_.-]{1,31}$")


@dataclass(frozen=True, slots=True)
class User:
    username: str
    role: Role
    display_name: str
    disabled: bool
    created_at_ms: int


@dataclass(frozen=True, slots=True)
class Session:
    user: User
    csrf_token: str
    expires_at_ms: int
    via: str = field(default="session")  # "session" (cookie, needs CSRF) or "token" (bearer, no ambient credential)


_DDL = """
CREATE TABLE IF NOT EXISTS console_users (
    username      TEXT PRIMARY KEY,
    role          TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled      BOOLEAN NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS console_sessions (
    token_sha256  TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    csrf_token    TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS console_api_tokens (
    token_sha256  TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    label         TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT
);
"""
TOKEN_TTL_DAYS = 90
"""Default lifetime of an API token; tokens from before expiry existed count from their creation."""


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A bearer token as listed: ``id`` is a prefix of its sha256 (enough to revoke it, useless to log in)."""

    id: str
    username: str
    label: str
    created_at_ms: int
    expires_at_ms: int


def _token_expiry(created_at_ms: Any, expires_at_ms: Any) -> int:
    return int(expires_at_ms) if expires_at_ms is not None else int(created_at_ms) + TOKEN_TTL_DAYS * 86_400_000


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def is_active_with_role(c: Cursor, username: str, roles: frozenset[Role]) -> bool:
    """Whether ``username`` is an enabled user holding one of ``roles`` (inside the caller's transaction)."""
    row = c.one("SELECT role, disabled FROM console_users WHERE username = ?", (username,))
    return row is not None and not bool(row[1]) and Role(row[0]) in roles


class AccountStore(Store):
    """Users, sessions and API tokens (see the module docstring)."""

    def __init__(
        self, db: Database, *, clock: Callable[[], float] = time.time, hasher: PasswordHasher | None = None
    ) -> None:
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))
        super().__init__(db, clock=clock)

    def _migrate(self, c: Cursor) -> None:
        super()._migrate(c)
        c.script(_DDL)
        # Databases made before tokens expired lack the column: add it (NULL counts from creation).
        if self.dialect == "postgres":
            c.execute("ALTER TABLE console_api_tokens ADD COLUMN IF NOT EXISTS expires_at_ms BIGINT")
        elif "expires_at_ms" not in {r[1] for r in c.all("PRAGMA table_info(console_api_tokens)")}:
            c.execute("ALTER TABLE console_api_tokens ADD COLUMN expires_at_ms BIGINT")

    @property
    def password_memory_kib(self) -> int:
        """Memory one password check needs (Argon2 ``memory_cost``): the console sizes its login slots by it."""
        return int(self._hasher.memory_cost)

    def add_user(self, username: str, role: Role | str, password: str, display_name: str = "") -> User:
        if not USERNAME_RE.match(username):
            raise UserError(
                "username: 2-32 characters, lower-case letters, digits, '_', '.', '-', starting with a letter"
            )
        try:
            role = Role(role)
        except ValueError:
            raise UserError(f"unknown role {role!r}; roles: {', '.join(r.value for r in Role)}") from None
        if len(password) < 10:
            raise UserError("password: at least 10 characters")
        now = self._now_ms()
        pw_hash = self._hasher.hash(password)
        with self._db.tx() as c:
            if c.execute("SELECT 1 FROM console_users WHERE username = ?", (username,)).fetchone():
                raise UserError(f"user {username} already exists")
            c.execute(
                "INSERT INTO console_users (username, role, display_name, password_hash, disabled, created_at_ms) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (username, role.value, display_name[:64] or username, pw_hash, False, now),
            )
        return User(username, role, display_name[:64] or username, False, now)

    def set_password(self, username: str, password: str) -> None:
        if len(password) < 10:
            raise UserError("password: at least 10 characters")
        with self._db.tx() as c:
            cur = c.execute(
                "UPDATE console_users SET password_hash = ? WHERE username = ?",
                (self._hasher.hash(password), username),
            )
            if cur.rowcount == 0:
                raise NotFoundError(username)
            # a new password ends everything the old one opened: sessions and API tokens
            c.execute("DELETE FROM console_sessions WHERE username = ?", (username,))
            c.execute("DELETE FROM console_api_tokens WHERE username = ?", (username,))

    def set_disabled(self, username: str, disabled: bool) -> None:
        with self._db.tx() as c:
            cur = c.execute("UPDATE console_users SET disabled = ? WHERE username = ?", (disabled, username))
            if cur.rowcount == 0:
                raise NotFoundError(username)
            if disabled:  # revoked, not suspended: enabling the account again does not bring them back
                c.execute("DELETE FROM console_sessions WHERE username = ?", (username,))
                c.execute("DELETE FROM console_api_tokens WHERE username = ?", (username,))

    def user(self, username: str) -> User | None:
        rows = self._db.read(
            "SELECT username, role, display_name, disabled, created_at_ms FROM console_users WHERE username = ?",
            (username,),
        )
        if not rows:
            return None
        u, role, name, disabled, created = rows[0]
        return User(u, Role(role), name, bool(disabled), int(created))

    def users(self) -> list[User]:
        rows = self._db.read(
            "SELECT username, role, display_name, disabled, created_at_ms FROM console_users ORDER BY username"
        )
        return [User(u, Role(r), n, bool(d), int(c)) for u, r, n, d, c in rows]

    def authenticate(self, username: str, password: str) -> User | None:
        """The user when the password matches and the account is enabled; timing does not reveal which failed."""
        rows = self._db.read("SELECT password_hash FROM console_users WHERE username = ?", (username,))
        stored = rows[0][0] if rows else self._dummy_hash
        try:
            self._hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if not rows:
            return None
        if self._hasher.check_needs_rehash(stored):
            with self._db.tx() as c:
                c.execute(
                    "UPDATE console_users SET password_hash = ? WHERE username = ?",
                    (self._hasher.hash(password), username),
                )
        user = self.user(username)
        return user if user is not None and not user.disabled else None

    # -- sessions and tokens -----------------------------------------------------------------------------------

    def create_session(self, username: str, ttl_s: int) -> tuple[str, Session]:
        """A new session: the cookie token (returned once, stored hashed) and its CSRF token."""
        user = self.user(username)
        if user is None or user.disabled:
            raise NotFoundError(username)
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self._now_ms()
        expires = now + ttl_s * 1000
        with self._db.tx() as c:
            c.execute("DELETE FROM console_sessions WHERE expires_at_ms < ?", (now,))
            c.execute(
                "INSERT INTO console_sessions (token_sha256, username, csrf_token, created_at_ms, expires_at_ms) "
                "VALUES (?, ?, ?, ?, ?)",
                (_sha(token), username, csrf, now, expires),
            )
        return token, Session(user, csrf, expires)

    def session(self, token: str) -> Session | None:
        rows = self._db.read(
            "SELECT s.csrf_token, s.expires_at_ms, u.username, u.role, u.display_name, u.disabled, u.created_at_ms "
            "FROM console_sessions s JOIN console_users u ON u.username = s.username WHERE s.token_sha256 = ?",
            (_sha(token),),
        )
        if not rows:
            return None
        csrf, expires, username, role, name, disabled, created = rows[0]
        if int(expires) < self._now_ms() or bool(disabled):
            return None
        return Session(User(username, Role(role), name, bool(disabled), int(created)), csrf, int(expires))

    def delete_session(self, token: str) -> None:
        with self._db.tx() as c:
            c.execute("DELETE FROM console_sessions WHERE token_sha256 = ?", (_sha(token),))

    def create_api_token(self, username: str, label: str, ttl_days: int = TOKEN_TTL_DAYS) -> str:
        """A bearer token for another system of the operations centre; shown once, stored hashed, expiring."""
        user = self.user(username)
        if user is None or user.disabled:
            raise NotFoundError(username)
        if not 1 <= ttl_days <= 3660:
            raise UserError("token lifetime: 1 to 3660 days")
        token = "kzt_" + secrets.token_urlsafe(32)
        now = self._now_ms()
        with self._db.tx() as c:
            c.execute(
                "INSERT INTO console_api_tokens (token_sha256, username, label, created_at_ms, expires_at_ms) "
                "VALUES (?, ?, ?, ?, ?)",
                (_sha(token), username, label[:64], now, now + ttl_days * 86_400_000),
            )
        return token

    def api_tokens(self, username: str | None = None) -> list[ApiToken]:
        """Tokens on record (expired ones too, until revoked), oldest first."""
        sql = "SELECT token_sha256, username, label, created_at_ms, expires_at_ms FROM console_api_tokens"
        if username:
            rows = self._db.read(sql + " WHERE username = ? ORDER BY created_at_ms", (username,))
        else:
            rows = self._db.read(sql + " ORDER BY created_at_ms")
        return [
            ApiToken(sha[:16], u, lbl, int(created), _token_expiry(created, exp)) for sha, u, lbl, created, exp in rows
        ]

    def revoke_api_tokens(self, *, token_id: str | None = None, username: str | None = None) -> int:
        """Delete one token (by the id :meth:`api_tokens` shows, at least 8 hex digits) or all of a user's."""
        with self._db.tx() as c:
            if token_id is not None:
                if not re.fullmatch(r"[0-9a-f]{8,64}", token_id):
                    raise UserError("token id: 8 to 64 hex digits, as `tokens list` shows")
                cur = c.execute("DELETE FROM console_api_tokens WHERE token_sha256 LIKE ?", (token_id + "%",))
            elif username is not None:
                cur = c.execute("DELETE FROM console_api_tokens WHERE username = ?", (username,))
            else:
                raise UserError("name a token id or a user")
            return int(cur.rowcount)

    def token_session(self, token: str) -> Session | None:
        rows = self._db.read(
            "SELECT u.username, u.role, u.display_name, u.disabled, u.created_at_ms, t.created_at_ms, t.expires_at_ms "
            "FROM console_api_tokens t JOIN console_users u ON u.username = t.username WHERE t.token_sha256 = ?",
            (_sha(token),),
        )
        if not rows or bool(rows[0][3]):
            return None
        username, role, name, disabled, created, t_created, t_expires = rows[0]
        expires = _token_expiry(t_created, t_expires)
        if expires <= self._now_ms():
            return None
        return Session(User(username, Role(role), name, bool(disabled), int(created)), "", expires, via="token")
