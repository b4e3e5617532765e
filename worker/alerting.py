"""Alert review between the rules and the outbox: schedule, cool-down, aggregation, camera budget.

The rules (:mod:`worker.rules`) keep making one incident per object; this
module decides, per incident, whether a dispatcher gets it as an *alert* (a
card) or only as a recorded *detection*, following :mod:`core.alerting`. It
never drops an event: a demoted incident still goes to Kafka and the history
with ``review="detection"`` and the reason, so an investigator can see
everything that happened in a zone while the feed stays workable.

Aggregation makes one incident per zone *episode* (first object in -> zone
empty again) out of the per-object incidents of a rule, with the number of
objects inside and the ids of every track seen; the per-object incidents are
recorded as detections pointing at it.

Pure state machines on stream time ``t`` like the rules, except
:class:`CameraBudget`, which the rule sets of one camera (one per model,
each on its model's batch thread) share behind a lock.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from uuid import UUID

from core.alerting import AlertPolicy, RuleAlerting
from core.config import CameraConfig, RulesConfig
from event_bus.events import IncidentState, IncidentType, new_event_id
from worker.incident_change import Box, IncidentChange, next_change

Review = Literal["alert", "detection"]
_MAX_TRACKS = 256
_BUDGET_WINDOW_S = 60.0


@dataclass(frozen=True)
class Reviewed:
    """An incident change with the review decision and, for zone episodes, who was inside."""

    change: IncidentChange
    review: Review = "alert"
    review_reason: str | None = None
    object_count: int | None = None
    track_ids: list[int] | None = None


class CameraBudget:
    """Alerts per camera per minute; past ``per_min``, one "camera is flooding" alert and the rest demoted."""

    def __init__(self, per_min: int) -> None:
        self.per_min = per_min
        self._lock = threading.Lock()
        self._starts: deque[float] = deque()
        self._notice: _Notice | None = None

    def admit(self, t: float, at: datetime) -> tuple[bool, list[Reviewed]]:
        """Count one would-be alert at stream time ``t``; False (and the notice, once) when over budget."""
        if self.per_min <= 0:
            return True, []
        with self._lock:
            self._prune(t)
            self._starts.append(t)
            if len(self._starts) <= self.per_min:
                return True, []
            if self._notice is not None:
                self._notice.suppressed += 1
                return False, []
            self._notice = _Notice(new_event_id(), at)
            return False, [self._notice.reviewed(IncidentState.START, at, self.per_min)]

    def tick(self, t: float, at: datetime) -> list[Reviewed]:
        """End the flooding alert once the last minute is back under budget."""
        if self.per_min <= 0:
            return []
        with self._lock:
            self._prune(t)
            if self._notice is None or len(self._starts) >= self.per_min:
                return []
            notice, self._notice = self._notice, None
        return [notice.reviewed(IncidentState.END, at, self.per_min)]

    def close(self, at: datetime) -> list[Reviewed]:
        with self._lock:
            notice, self._notice = self._notice, None
        return [notice.reviewed(IncidentState.END, at, self.per_min)] if notice is not None else []

    def _prune(self, t: float) -> None:
        while self._starts and t - self._starts[0] >= _BUDGET_WINDOW_S:
            self._starts.popleft()


@dataclass
class _Notice:
    incident_id: UUID
    started_at: datetime
    seq: int = 0
    suppressed: int = 0
    type: IncidentType = IncidentType.CAMERA_FLOODING
    severity: str = "high"
    zone: str | None = None

    def reviewed(self, state: IncidentState, at: datetime, per_min: int) -> Reviewed:
        change = next_change(self, state, at, None, [], 1.0)
        reason = f"more than {per_min} alerts a minute; {self.suppressed} more recorded as detections"
        return Reviewed(change, "alert", reason, object_count=self.suppressed)


@dataclass
class _Episode:
    """One zone episode of an aggregating rule: from the first object in until the zone is empty."""

    incident_id: UUID
    type: IncidentType
    zone: str | None
    severity: str
    started_at: datetime
    review: Review
    reason: str | None
    members: dict[UUID, tuple[int | None, Box, float]] = field(default_factory=dict)
    tracks: list[int] = field(default_factory=list)
    peak: int = 0
    seq: int = 0
    last_emit_t: float = 0.0
    dirty: bool = False

    def add(self, c: IncidentChange) -> None:
        self.members[c.incident_id] = (c.track_id, c.boxes[0] if c.boxes else [], c.confidence)
        if c.track_id is not None and c.track_id not in self.tracks and len(self.tracks) < _MAX_TRACKS:
            self.tracks.append(c.track_id)
        self.peak = max(self.peak, len(self.members))
        self.dirty = True

    def emit(self, state: IncidentState, t: float, at: datetime) -> Reviewed:
        self.last_emit_t, self.dirty = t, False
        boxes = [box for _, box, _ in self.members.values() if box][:_MAX_TRACKS]
        ended = state is IncidentState.END
        confidence = round(max((c for _, _, c in self.members.values()), default=0.0), 4)
        change = next_change(self, state, at, None, boxes, confidence)
        count = self.peak if ended else len(self.members)
        return Reviewed(change, self.review, self.reason, object_count=count, track_ids=list(self.tracks))


class AlertGate:
    """Review decisions for one rule set (one camera and one model); see the module docstring."""

    def __init__(self, camera: CameraConfig, rules: RulesConfig, budget: CameraBudget) -> None:
        self._default = rules.alerting
        self._zones: dict[str, AlertPolicy] = {z.name: z.alerting for z in camera.zones if z.alerting is not None}
        self._update_every_s = rules.update_every_s
        self._budget = budget
        self._decided: dict[UUID, tuple[Review, str | None]] = {}
        self._last_alert: dict[tuple[str | None, str], float] = {}
        self._episodes: dict[tuple[str | None, str], _Episode] = {}
        self._member_of: dict[UUID, tuple[str | None, str]] = {}

    def policy(self, zone: str | None) -> AlertPolicy:
        return self._zones.get(zone, self._default) if zone is not None else self._default

    def apply(self, t: float, at: datetime, changes: list[IncidentChange]) -> list[Reviewed]:
        out = self._budget.tick(t, at)
        for c in changes:
            policy = self.policy(c.zone)
            rule = policy.rule(c.type.value)
            if rule.review == "aggregate" or c.incident_id in self._member_of:
                out += self._aggregate(c, policy, rule, t, at)
            else:
                out += self._single(c, policy, rule, t, at)
        for ep in self._episodes.values():  # membership changed: one update per update_every_s at most
            if ep.dirty and t - ep.last_emit_t >= self._update_every_s:
                out.append(ep.emit(IncidentState.UPDATE, t, at))
        return out

    def close(self, at: datetime) -> list[Reviewed]:
        """End every open episode (camera stopped or moved) and a flooding alert if one is open."""
        out = [ep.emit(IncidentState.END, ep.last_emit_t, at) for ep in self._episodes.values()]
        self._episodes.clear()
        self._member_of.clear()
        self._decided.clear()
        return out + self._budget.close(at)

    # -- decisions ---------------------------------------------------------------------------------------------

    def _decide(
        self, key: tuple[str | None, str], policy: AlertPolicy, rule: RuleAlerting, t: float, at: datetime
    ) -> tuple[Review, str | None, list[Reviewed]]:
        if rule.review == "detection":
            return "detection", "rule set to detection", []
        if not policy.armed(at):
            return "detection", "zone not armed (schedule)", []
        last = self._last_alert.get(key)
        if last is not None and t - last < rule.cooldown_s:
            return "detection", f"cool-down ({rule.cooldown_s:g} s after the last alert)", []
        admitted, notice = self._budget.admit(t, at)
        if not admitted:
            return "detection", "camera flooding (alert budget)", notice
        self._last_alert[key] = t
        return "alert", None, []

    def _single(
        self, c: IncidentChange, policy: AlertPolicy, rule: RuleAlerting, t: float, at: datetime
    ) -> list[Reviewed]:
        extra: list[Reviewed] = []
        if c.state is IncidentState.START or c.incident_id not in self._decided:
            review, reason, extra = self._decide((c.zone, c.type.value), policy, rule, t, at)
            self._decided[c.incident_id] = (review, reason)
        review, reason = self._decided[c.incident_id]
        if c.state is IncidentState.END:
            del self._decided[c.incident_id]
        return [*extra, Reviewed(c, review, reason)]

    def _aggregate(
        self, c: IncidentChange, policy: AlertPolicy, rule: RuleAlerting, t: float, at: datetime
    ) -> list[Reviewed]:
        key = self._member_of.get(c.incident_id, (c.zone, c.type.value))
        out: list[Reviewed] = []
        ep = self._episodes.get(key)
        if ep is None and c.state is not IncidentState.START:  # its episode was already closed
            return [Reviewed(c, "detection", "aggregated into a closed zone episode")]
        if ep is None:
            review, reason, out = self._decide(key, policy, rule, t, at)
            ep = _Episode(new_event_id(), c.type, c.zone, c.severity, c.observed_at, review, reason)
            self._episodes[key] = ep
            ep.add(c)
            out.append(ep.emit(IncidentState.START, t, at))
        elif c.state is not IncidentState.END:
            ep.add(c)
        self._member_of[c.incident_id] = key
        out.append(Reviewed(c, "detection", f"aggregated into zone episode {ep.incident_id}"))
        if c.state is IncidentState.END:
            ep.members.pop(c.incident_id, None)
            self._member_of.pop(c.incident_id, None)
            ep.dirty = True
            if not ep.members:
                out.append(ep.emit(IncidentState.END, t, at))
                del self._episodes[key]
        return out


def gate_factory(rules: RulesConfig) -> Callable[[CameraConfig], AlertGate]:
    """One budget per camera shared by all its rule sets; a gate per rule set (used by the worker)."""
    budgets: dict[str, CameraBudget] = {}
    lock = threading.Lock()

    def make(camera: CameraConfig) -> AlertGate:
        with lock:
            budget = budgets.setdefault(camera.id, CameraBudget(rules.alert_budget_per_min))
        return AlertGate(camera, rules, budget)

    return make
