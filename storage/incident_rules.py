"""The incident workflow as rules: statuses, actions, who may do what, and what a note may hold.

Pure functions and types, no database: :func:`next_status` is the one place a
transition is decided, so the store, the console and their tests agree.
"""

from __future__ import annotations

import re
from enum import StrEnum

from storage.accounts import Role

__all__ = [
    "CLOSED",
    "WORKFLOW_ROLES",
    "Action",
    "ConflictError",
    "InvalidInput",
    "TransitionError",
    "WorkflowStatus",
    "clean_note",
    "next_status",
]


class WorkflowStatus(StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    FALSE_ALARM = "false_alarm"


CLOSED = frozenset({WorkflowStatus.RESOLVED, WorkflowStatus.FALSE_ALARM})


class Action(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    ASSIGN = "assign"
    NOTE = "note"
    RESOLVE = "resolve"
    FALSE_ALARM = "false_alarm"
    REOPEN = "reopen"


class TransitionError(ValueError):
    """The action is not allowed in the incident's current status (or not for this role)."""


class ConflictError(RuntimeError):
    """The incident changed since the caller read it (``expected_version`` did not match)."""


class InvalidInput(ValueError):
    """An action's input is unusable (empty or oversized note, unknown assignee): nothing was stored."""


WORKFLOW_ROLES = frozenset({Role.DISPATCHER, Role.ADMIN})
NOTE_MAX = 2000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def next_status(current: WorkflowStatus, action: Action, role: Role) -> WorkflowStatus:
    """The status after ``action``; raises :class:`TransitionError` when the action is not allowed.

    Closing (resolve or false alarm) needs an acknowledgement first, so that
    every closed incident was looked at by someone who said so; an admin may
    skip that (bulk clean-up of a misconfigured camera). Only an admin reopens.
    """
    if role not in WORKFLOW_ROLES:
        raise TransitionError(f"role {role.value} cannot change incidents")
    if action is Action.NOTE:
        return current
    if action is Action.ACKNOWLEDGE:
        if current is WorkflowStatus.NEW:
            return WorkflowStatus.ACKNOWLEDGED
        raise TransitionError(f"cannot acknowledge an incident that is {current.value}")
    if action is Action.ASSIGN:
        if current in CLOSED:
            raise TransitionError(f"cannot assign an incident that is {current.value}")
        return current
    if action in (Action.RESOLVE, Action.FALSE_ALARM):
        target = WorkflowStatus.RESOLVED if action is Action.RESOLVE else WorkflowStatus.FALSE_ALARM
        if current is WorkflowStatus.ACKNOWLEDGED:
            return target
        if current is WorkflowStatus.NEW:
            if role is Role.ADMIN:
                return target
            raise TransitionError(f"acknowledge the incident before marking it {target.value}")
        raise TransitionError(f"incident is already {current.value}")
    if action is Action.REOPEN:
        if role is not Role.ADMIN:
            raise TransitionError("only an admin can reopen an incident")
        if current in CLOSED:
            return WorkflowStatus.ACKNOWLEDGED
        raise TransitionError(f"cannot reopen an incident that is {current.value}")
    raise TransitionError(f"unknown action {action!r}")  # pragma: no cover - exhaustive above


def clean_note(text: str) -> str:
    """A note as stored: plain text, trimmed, no control characters, bounded. It is never interpreted as HTML."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n")).strip()
    if not text:
        raise InvalidInput("a note needs some text")
    if len(text) > NOTE_MAX:
        raise InvalidInput(f"a note holds at most {NOTE_MAX} characters")
    return text
