"""Password logins behind limits, so that the login form is neither a memory attack nor a way to lock admins out.

Why each limit:

* **Concurrent checks.** One Argon2id check holds its ``memory_cost`` (64 MiB
  with argon2-cffi's defaults) for its whole run; forty at once took 2.4 GiB,
  three times the console pod's limit. A semaphore sized from a memory budget
  (``login_memory_mib`` / memory per check) bounds that, and a login that
  cannot get a slot within ``login_wait_s`` is answered 503 instead of queueing
  without end.
* **Per client address**, in front of hashing: spraying one password across
  many user names from one address is stopped before it costs any Argon2 work.
* **Per account and address**, not per account: failures from an attacker's
  address slow that address down, while the admin logging in from their own
  desk is not locked out (a per-account lock would be a denial of service).
* **Pruned state**: failure times older than the window are dropped, and keys
  with none left are forgotten, so the tables cannot grow without bound.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["LoginGuard", "LoginRefused", "slots_for_budget"]


class _Authenticator(Protocol):
    def authenticate(self, username: str, password: str) -> Any: ...


class LoginRefused(Exception):
    """A login that did not succeed: ``status`` is 401 (wrong credentials), 429 (too many) or 503 (busy)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def slots_for_budget(budget_mib: int, memory_cost_kib: int) -> int:
    """How many password checks fit in ``budget_mib`` at ``memory_cost_kib`` each (at least one)."""
    return max(1, (budget_mib * 1024) // max(1, memory_cost_kib))


class LoginGuard:
    """Rate limits and a memory-sized semaphore around :meth:`authenticate` (see the module docstring)."""

    def __init__(
        self,
        *,
        attempts: int,
        address_attempts: int,
        window_s: float,
        slots: int,
        wait_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 20_000,
    ) -> None:
        self.attempts = attempts
        self.address_attempts = address_attempts
        self.window_s = window_s
        self.slots = slots
        self.wait_s = wait_s
        self.max_keys = max_keys
        self._clock = clock
        self._semaphore = threading.BoundedSemaphore(slots)
        self._lock = threading.Lock()
        self._by_account: dict[tuple[str, str], deque[float]] = {}
        self._by_address: dict[str, deque[float]] = {}
        self._pruned_at = clock()

    def tracked_keys(self) -> int:
        """How many accounts and addresses have failures on record (for tests and metrics)."""
        with self._lock:
            return len(self._by_account) + len(self._by_address)

    def authenticate(self, store: _Authenticator, username: str, password: str, address: str) -> Any:
        """The user ``store.authenticate`` returns; raises :class:`LoginRefused` otherwise. Blocking."""
        account = (username.lower(), address)
        with self._lock:
            self._prune()
            if self._count(self._by_address, address) >= self.address_attempts:
                raise LoginRefused(429, "too many failed logins from this address; wait a few minutes")
            if self._count(self._by_account, account) >= self.attempts:
                raise LoginRefused(429, "too many failed logins for this user; wait a few minutes")
        if not self._semaphore.acquire(timeout=self.wait_s):
            raise LoginRefused(503, "the console is busy checking passwords; try again shortly")
        try:
            user = store.authenticate(username, password)
        finally:
            self._semaphore.release()
        with self._lock:
            if user is None:
                now = self._clock()
                self._by_account.setdefault(account, deque()).append(now)
                self._by_address.setdefault(address, deque()).append(now)
            else:
                # Only this account's record: a valid login must not wipe the address's spraying record.
                self._by_account.pop(account, None)
        if user is None:
            raise LoginRefused(401, "wrong user name or password")
        return user

    def _count(self, table: dict[Any, deque[float]], key: Any) -> int:
        q = table.get(key)
        if q is None:
            return 0
        cutoff = self._clock() - self.window_s
        while q and q[0] < cutoff:
            q.popleft()
        return len(q)

    def _prune(self) -> None:
        """Forget expired failures; called under the lock, at most every quarter window unless over ``max_keys``."""
        now = self._clock()
        size = len(self._by_account) + len(self._by_address)
        if now - self._pruned_at < self.window_s / 4 and size <= self.max_keys:
            return
        self._pruned_at = now
        _prune_table(self._by_account, now - self.window_s, self.max_keys // 2)
        _prune_table(self._by_address, now - self.window_s, self.max_keys // 2)


def _prune_table(table: dict[Any, deque[float]], cutoff: float, keep: int) -> None:
    """Drop keys whose last failure is older than ``cutoff``; if more than ``keep`` remain, the least recent."""
    for key in [k for k, q in table.items() if not q or q[-1] < cutoff]:
        del table[key]
    if len(table) > keep:
        for key in sorted(table, key=lambda k: table[k][-1])[: len(table) - keep]:
            del table[key]
