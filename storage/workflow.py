"""The console's database: incident workflow, camera health and accounts in one store, one connection.

The concerns live in their own modules, each with its schema:
:mod:`storage.incidents`, :mod:`storage.camera_health` and
:mod:`storage.accounts`. They share a :class:`storage.db.Database` because
one console transaction can touch two of them (assigning an incident checks
that the assignee is an active dispatcher) and because the console, its
tests and ``kuzet console`` open one database, not three.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from argon2 import PasswordHasher

from storage.accounts import AccountStore
from storage.camera_health import CameraHealthStore
from storage.db import Database
from storage.incidents import IncidentStore

__all__ = ["WorkflowStore", "open_workflow_store"]


class WorkflowStore(IncidentStore, CameraHealthStore, AccountStore):
    """Incidents, camera health, users and sessions on one :class:`~storage.db.Database`."""


def open_workflow_store(
    url: str | Path, *, clock: Callable[[], float] = time.time, hasher: PasswordHasher | None = None
) -> WorkflowStore:
    """``postgresql://...`` opens PostgreSQL (psycopg 3); anything else is a SQLite file path."""
    return WorkflowStore(Database(url), clock=clock, hasher=hasher)
