"""Log in to a console under test as one of the standard users (dispatch.testing.add_standard_users)."""

from __future__ import annotations

import httpx

from dispatch.testing import PASSWORDS


def login(url: str, role: str, timeout_s: float = 60) -> httpx.Client:
    """A client holding ``role``'s session cookie and CSRF header (roles without a password of their own use the
    dispatcher's)."""
    c = httpx.Client(base_url=url, timeout=timeout_s)
    r = c.post("/api/session", json={"username": role, "password": PASSWORDS.get(role, PASSWORDS["dispatcher"])})
    r.raise_for_status()
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return c
