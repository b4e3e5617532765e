"""Readiness of one console replica: its database answers and its bus consumer is polling.

Why apart from ``/api/health``: liveness says "the process serves HTTP, do not
restart it"; readiness says "send it traffic". A replica whose database
connection is down, or whose bus consumer has not polled successfully for a
while, must leave the load balancer (its pages would be stale or fail), but
restarting it would not help: it reconnects on its own with back-off.
"""

from __future__ import annotations

import time
from typing import Any

BUS_STALE_S = 30.0
"""A consumer that has not completed a poll for this long is not ready (polls take 0.25 s when healthy)."""


def check_database(ctx: Any) -> tuple[bool, str]:
    """Blocking: one trivial query on the workflow store."""
    try:
        ctx.store.current_rev()
    except Exception as exc:
        return False, f"database: {type(exc).__name__}"
    return True, "database"


def check_bus(ctx: Any) -> tuple[bool, str]:
    """The bus consumer thread is alive and completed a poll recently (ready when the console does not consume)."""
    if not ctx.settings.consume:
        return True, "bus (not consumed)"
    ing = ctx.ingestor
    if ing is None or not ing.alive():
        return False, "bus: consumer not running"
    last_ok = ing.last_ok_at
    if last_ok is None or time.monotonic() - last_ok > BUS_STALE_S:
        return False, "bus: no successful poll recently"
    return True, "bus"


def readiness(ctx: Any) -> dict[str, Any]:
    """``{"ready": bool, "checks": {name: {"ok": bool, "detail": str}}}`` (no internals beyond the names)."""
    checks = {}
    for name, fn in (("database", check_database), ("bus", check_bus)):
        ok, detail = fn(ctx)
        checks[name] = {"ok": ok, "detail": detail}
    return {"ready": all(c["ok"] for c in checks.values()), "checks": checks}
