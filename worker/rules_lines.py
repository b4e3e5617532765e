"""Line crossing with direction, counted per period, and crowding per zone.

Both rules are pure state machines like :mod:`worker.rules`: tracked
detections of one analysed frame in, incident changes out, no clock or I/O.
A crossing is an instant, so its incident starts and ends on the same frame;
its ``count`` is the line's count in that direction so far in the current
period. Counts of every line, direction and label are also handed out once
per period (zeros included) for the count event and the metrics.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import numpy.typing as npt

from core.analytics_config import CrowdRule, Tripwire
from core.detections import Detections
from core.labels import Label
from event_bus.analytics_events import AnalyticsDetails, CrowdDetails, LineCountEntry, LineCrossingDetails
from event_bus.events import IncidentState, IncidentType, new_event_id
from worker.incident_change import IncidentChange, TimedIncident, next_change
from worker.lines import PixelPolyline, SideTracker
from worker.zones import PixelZone

Box = list[float]
CountKey = tuple[str, Literal["in", "out"], str]  # line, direction, label


@dataclass(frozen=True)
class PeriodCounts:
    """Crossings of one count period: (line, direction, label) -> count, every configured key present."""

    start: datetime
    end: datetime
    complete: bool
    counts: dict[CountKey, int]

    def entries(self) -> list[LineCountEntry]:
        return [LineCountEntry(line=k[0], direction=k[1], label=k[2], count=n) for k, n in sorted(self.counts.items())]


@dataclass
class _Line:
    cfg: Tripwire
    labels: frozenset[int]
    in_sign: int
    sides: SideTracker


def _anchor(dets: Detections, anchor: str) -> npt.NDArray[np.float64]:
    if anchor == "bottom_center":
        return np.asarray(dets.bottom_center, dtype=np.float64)
    return np.asarray((dets.xyxy[:, :2] + dets.xyxy[:, 2:]) / 2, dtype=np.float64)


@dataclass
class LineCrossingRule:
    """Tripwires of one camera: a ``line_crossing`` incident per crossing, and counts per period."""

    lines: list[Tripwire]
    width: int
    height: int
    period_s: float = 60.0
    _lines: list[_Line] = field(default_factory=list)
    _bucket: int | None = None
    _counts: Counter[CountKey] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        for cfg in self.lines:
            poly = PixelPolyline(cfg.points, self.width, self.height)
            labels = frozenset(int(Label.parse(n)) for n in cfg.labels)
            sides = SideTracker(poly, band_px=cfg.band * self.width)
            self._lines.append(_Line(cfg, labels, 1 if cfg.in_side == "right" else -1, sides))

    def _keys(self) -> list[CountKey]:
        return [(ln.cfg.name, d, lbl) for ln in self._lines for d in ("in", "out") for lbl in sorted(ln.cfg.labels)]

    def update(self, t: float, at: datetime, tracked: Detections) -> tuple[list[IncidentChange], list[PeriodCounts]]:
        """Crossings on this frame, and the counts of a period that this frame closed (if any)."""
        periods = self._roll(at)
        if tracked.tracker_id is None:
            raise ValueError("line crossing needs tracked detections (tracker_id set)")
        changes: list[IncidentChange] = []
        for line in self._lines:
            mask = np.isin(tracked.class_id, list(line.labels)) & (tracked.tracker_id >= 0)
            dets = tracked[mask]
            if len(dets) == 0:
                line.sides.update(t, np.zeros(0, np.int64), np.zeros((0, 2)))
                continue
            assert dets.tracker_id is not None
            for c in line.sides.update(t, dets.tracker_id.astype(np.int64), _anchor(dets, line.cfg.anchor)):
                i = int(np.flatnonzero(dets.tracker_id == c.track)[0])
                label = Label(int(dets.class_id[i])).slug
                direction: Literal["in", "out"] = "in" if c.to_side == line.in_sign else "out"
                key = (line.cfg.name, direction, label)
                self._counts[key] += 1
                if line.cfg.alert:
                    box = [round(float(v), 1) for v in dets.xyxy[i]]
                    details = LineCrossingDetails(
                        line=line.cfg.name, direction=direction, label=label, count=self._counts[key]
                    )
                    changes += _instant(
                        IncidentType.LINE_CROSSING,
                        line.cfg.severity,
                        at,
                        c.track,
                        box,
                        float(dets.confidence[i]),
                        AnalyticsDetails(line_crossing=details),
                        zone=line.cfg.name,
                    )
        return changes, periods

    def _roll(self, at: datetime) -> list[PeriodCounts]:
        bucket = int(at.timestamp() // self.period_s)
        if self._bucket is None:
            self._bucket = bucket
        if bucket == self._bucket:
            return []
        done = self._period(complete=True)
        self._bucket, self._counts = bucket, Counter()
        return [done]

    def _period(self, complete: bool, until: datetime | None = None) -> PeriodCounts:
        assert self._bucket is not None
        start = datetime.fromtimestamp(self._bucket * self.period_s, UTC)
        end = until if until is not None else datetime.fromtimestamp((self._bucket + 1) * self.period_s, UTC)
        return PeriodCounts(start, max(end, start), complete, {k: self._counts[k] for k in self._keys()})

    def close(self, at: datetime) -> list[PeriodCounts]:
        """The counts of the period in progress, marked incomplete (camera stopped or reconfigured)."""
        if self._bucket is None:
            return []
        out = [self._period(complete=False, until=at)]
        self._bucket, self._counts = None, Counter()
        return out


def _instant(
    kind: IncidentType,
    severity: str,
    at: datetime,
    track: int | None,
    box: Box,
    confidence: float,
    details: AnalyticsDetails,
    zone: str | None = None,
) -> list[IncidentChange]:
    """Start and end of an incident that is one moment (a crossing, a speed measurement)."""
    start = IncidentChange(
        incident_id=new_event_id(),
        type=kind,
        state=IncidentState.START,
        seq=0,
        severity=severity,
        started_at=at,
        observed_at=at,
        ended_at=None,
        zone=zone,
        track_id=track,
        boxes=[box] if box else [],
        confidence=round(min(max(confidence, 0.0), 1.0), 4),
        analytics=details,
    )
    return [start, replace(start, state=IncidentState.END, seq=1, ended_at=at)]


@dataclass
class _Crowd(TimedIncident):
    peak: int = 0


@dataclass
class CrowdingRule:
    """Per zone: more than N people for T seconds opens a ``crowding`` incident; occupancy for every zone.

    The count must stay above the limit for ``for_s`` (one frame at or under
    it restarts the wait), and the incident ends once the count has stayed at
    or under the limit for ``end_after_s``, so a person hidden for one frame
    neither opens nor closes a crowd.
    """

    rules: list[CrowdRule]
    zones: list[PixelZone]
    update_every_s: float
    end_after_s: float
    occupancy: dict[str, int] = field(default_factory=dict)
    _above_since: dict[str, float] = field(default_factory=dict)
    _below_since: dict[str, float] = field(default_factory=dict)
    _open: dict[str, _Crowd] = field(default_factory=dict)

    def update(self, t: float, at: datetime, people: Detections) -> list[IncidentChange]:
        inside_by_zone: dict[str, Detections] = {}
        for zone in self.zones:
            inside = people[zone.contains_feet(people)]
            inside_by_zone[zone.name] = inside
            self.occupancy[zone.name] = len(inside)
        out: list[IncidentChange] = []
        for rule in self.rules:
            inside = inside_by_zone.get(rule.zone, Detections.empty())
            out += self._step(rule, t, at, inside)
        return out

    def _step(self, rule: CrowdRule, t: float, at: datetime, inside: Detections) -> list[IncidentChange]:
        n = len(inside)
        crowd = self._open.get(rule.zone)
        if n > rule.max_persons:
            self._above_since.setdefault(rule.zone, t)
            self._below_since.pop(rule.zone, None)
        else:
            self._above_since.pop(rule.zone, None)
            self._below_since.setdefault(rule.zone, t)
        if crowd is None:
            since = self._above_since.get(rule.zone)
            if since is None or t - since < rule.for_s:
                return []
            crowd = _Crowd(new_event_id(), at, IncidentType.CROWDING, rule.severity, rule.zone, last_emit_t=t, peak=n)
            self._open[rule.zone] = crowd
            return [self._change(rule, crowd, IncidentState.START, at, n, inside)]
        crowd.peak = max(crowd.peak, n)
        below = self._below_since.get(rule.zone)
        if below is not None and t - below >= self.end_after_s:
            del self._open[rule.zone]
            return [self._change(rule, crowd, IncidentState.END, at, n, inside)]
        if n > rule.max_persons and t - crowd.last_emit_t >= self.update_every_s:
            crowd.last_emit_t = t
            return [self._change(rule, crowd, IncidentState.UPDATE, at, n, inside)]
        return []

    @staticmethod
    def _change(
        rule: CrowdRule, crowd: _Crowd, state: IncidentState, at: datetime, n: int, inside: Detections
    ) -> IncidentChange:
        boxes = [[round(float(v), 1) for v in box] for box in inside.xyxy[:256]]
        conf = float(inside.confidence.mean()) if len(inside) else 0.0
        details = AnalyticsDetails(crowd=CrowdDetails(count=n, peak=crowd.peak, limit=rule.max_persons))
        return next_change(crowd, state, at, None, boxes, round(min(max(conf, 0.0), 1.0), 4), details)

    def close(self, at: datetime) -> list[IncidentChange]:
        out = []
        for zone, crowd in self._open.items():
            rule = next(r for r in self.rules if r.zone == zone)
            out.append(self._change(rule, crowd, IncidentState.END, at, 0, Detections.empty()))
        self._open.clear()
        return out
