"""Rules that turn tracked detections into incidents, one incident per object.

Pure state machines: they see one analysed frame at a time (stream time ``t``
in seconds, capture time ``at``) and return the incident changes it causes.
No clock, thread or I/O in here, so every rule is tested by feeding frames.

Why "one incident per object" needs care: a tracker can lose a walker for a
moment and give them a new id. A dispatcher must not get a second alert for
the same person, so a new track that appears where an open incident's object
was last seen, shortly after it vanished, continues that incident.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import numpy as np

from core.boxes import iou
from core.config import RulesConfig
from core.detections import Detections
from core.labels import Label
from event_bus.events import IncidentState, IncidentType, new_event_id
from worker.incident_change import Box, IncidentChange, next_change
from worker.zones import PixelZone

# How close (in box widths) a new track must appear to a vanished one to be taken as the same object.
_CONTINUATION_DISTANCE = 1.0
_ZONE_ENTRY_MIN_FRAMES = 2


@dataclass
class _Open:
    """An incident that has started and not yet ended."""

    incident_id: UUID
    type: IncidentType
    severity: str
    started_at: datetime
    zone: str | None
    track_id: int | None
    seq: int = 0
    last_emit_t: float = 0.0
    last_box: Box = field(default_factory=list)
    confidence: float = 0.0

    def change(self, state: IncidentState, at: datetime) -> IncidentChange:
        boxes = [self.last_box] if self.last_box else []
        return next_change(self, state, at, self.track_id, boxes, round(float(self.confidence), 4))


def _open(kind: IncidentType, severity: str, at: datetime, zone: str | None, track: int | None) -> _Open:
    return _Open(new_event_id(), kind, severity, at, zone, track)


@dataclass
class _Visit:
    """A person track's stay in one zone."""

    track_id: int
    first_t: float
    last_t: float
    box: Box
    confidence: float
    frames: int = 0
    entry: _Open | None = None
    loiter: _Open | None = None


def _center_distance_in_widths(a: Box, b: Box) -> float:
    ca = ((a[0] + a[2]) / 2, (a[1] + a[3]) / 2)
    cb = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    width = max(a[2] - a[0], b[2] - b[0], 1.0)
    return float(np.hypot(ca[0] - cb[0], ca[1] - cb[1]) / width)


class PersonZoneRule:
    """Person enters a zone (after two frames inside) and person loiters in it (longer than N seconds)."""

    def __init__(self, zones: list[PixelZone], cfg: RulesConfig) -> None:
        self._zones = zones
        self._cfg = cfg
        self._visits: dict[tuple[str, int], _Visit] = {}
        self._cooldown: dict[tuple[str, int], float] = {}

    def update(self, t: float, at: datetime, people: Detections) -> list[IncidentChange]:
        if people.tracker_id is None:
            raise ValueError("person rules need tracked detections (tracker_id set)")
        changes: list[IncidentChange] = []
        for zone in self._zones:
            inside = zone.contains_feet(people)
            for i in np.flatnonzero(inside & (people.tracker_id >= 0)):
                box = [round(float(v), 1) for v in people.xyxy[i]]
                changes += self._seen(zone, int(people.tracker_id[i]), box, float(people.confidence[i]), t, at)
        changes += self._expire(t, at)
        return changes

    def _seen(self, zone: PixelZone, track: int, box: Box, conf: float, t: float, at: datetime) -> list[IncidentChange]:
        key = (zone.name, track)
        visit = self._visits.get(key) or self._continue_vanished(zone.name, track, box, t)
        if visit is None:
            visit = _Visit(track, t, t, box, conf)
            self._visits[key] = visit
        visit.last_t, visit.box, visit.confidence = t, box, conf
        visit.frames += 1
        out: list[IncidentChange] = []
        cooling = self._cooldown.get(key, -1.0) > t
        if visit.entry is None and visit.frames >= _ZONE_ENTRY_MIN_FRAMES and not cooling:
            visit.entry = _open(IncidentType.PERSON_IN_ZONE, zone.severity, at, zone.name, track)
            out.append(self._emit(visit.entry, visit, IncidentState.START, t, at))
        elif visit.entry is not None and t - visit.entry.last_emit_t >= self._cfg.update_every_s:
            out.append(self._emit(visit.entry, visit, IncidentState.UPDATE, t, at))
        if visit.loiter is None and t - visit.first_t >= self._cfg.loiter_seconds and not cooling:
            visit.loiter = _open(IncidentType.LOITERING, _raise(zone.severity), at, zone.name, track)
            out.append(self._emit(visit.loiter, visit, IncidentState.START, t, at))
        elif visit.loiter is not None and t - visit.loiter.last_emit_t >= self._cfg.update_every_s:
            out.append(self._emit(visit.loiter, visit, IncidentState.UPDATE, t, at))
        return out

    def _continue_vanished(self, zone: str, track: int, box: Box, t: float) -> _Visit | None:
        """Adopt a visit whose track vanished near here: the tracker re-identified the same person."""
        best: tuple[float, tuple[str, int]] | None = None
        for key, visit in self._visits.items():
            if key[0] != zone or visit.last_t >= t:
                continue
            dist = _center_distance_in_widths(visit.box, box)
            if dist <= _CONTINUATION_DISTANCE and (best is None or dist < best[0]):
                best = (dist, key)
        if best is None:
            return None
        visit = self._visits.pop(best[1])
        visit.track_id = track
        for inc in (visit.entry, visit.loiter):
            if inc is not None:
                inc.track_id = track
        self._visits[(zone, track)] = visit
        return visit

    @staticmethod
    def _emit(inc: _Open, visit: _Visit, state: IncidentState, t: float, at: datetime) -> IncidentChange:
        inc.last_emit_t, inc.last_box, inc.confidence = t, visit.box, max(inc.confidence, visit.confidence)
        return inc.change(state, at)

    def _expire(self, t: float, at: datetime) -> list[IncidentChange]:
        out: list[IncidentChange] = []
        for key, visit in list(self._visits.items()):
            if t - visit.last_t < self._cfg.end_after_s:
                continue
            for inc in (visit.entry, visit.loiter):
                if inc is not None:
                    out.append(inc.change(IncidentState.END, at))
            self._cooldown[key] = t + self._cfg.cooldown_s
            del self._visits[key]
        self._cooldown = {k: until for k, until in self._cooldown.items() if until > t}
        return out

    def close(self, at: datetime) -> list[IncidentChange]:
        """End everything open (camera stopped or reassigned)."""
        out = [
            inc.change(IncidentState.END, at)
            for visit in self._visits.values()
            for inc in (visit.entry, visit.loiter)
            if inc is not None
        ]
        self._visits.clear()
        return out


def _raise(severity: str) -> str:
    order = ["low", "medium", "high", "critical"]
    return order[min(order.index(severity) + 1, len(order) - 1)]


@dataclass(eq=False)  # identity semantics: regions are dict keys while matching
class _Region:
    """A place in the frame where fire (or smoke) keeps being seen."""

    box: Box
    window: deque[bool]
    last_hit_t: float
    confidence: float
    incident: _Open | None = None
    # per hit in the window: texture flicker, mean brightness and box (see worker.fire_flicker)
    looks: deque[tuple[float, float, Box]] = field(default_factory=deque)


@dataclass(frozen=True)
class _Hit:
    box: Box
    confidence: float
    flicker: float  # NaN: not measured
    luma: float


def _near(a: Box, b: Box) -> bool:
    """Overlapping, or the centre of one inside the other grown by half: flames change shape frame to frame."""
    if iou(a, b) > 0:
        return True
    w, h = (a[2] - a[0]) / 2, (a[3] - a[1]) / 2
    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    return a[0] - w <= cx <= a[2] + w and a[1] - h <= cy <= a[3] + h


class FireRule:
    """Fire or smoke confirmed in N of the last M analysed frames, per region of the frame.

    With the temporal check on (``fire_min_flicker`` > 0) and detections that carry
    ``flicker``/``luma`` (:class:`worker.fire_flicker.FlickerMeter`, which the worker always runs),
    confirmation also needs the region to look like flames over its window: texture that keeps
    changing (median flicker), brightness that does not jump on and off (flashing lights), and a box
    that stays put (headlights drive through). Detections without those values (callers that do not
    measure them) are judged on N-of-M alone.
    """

    def __init__(self, label: Label, cfg: RulesConfig) -> None:
        if label not in (Label.FIRE, Label.SMOKE):
            raise ValueError("FireRule is for fire or smoke")
        self._label = label
        self._type = IncidentType.FIRE if label is Label.FIRE else IncidentType.SMOKE
        self._severity = "critical" if label is Label.FIRE else "high"
        self._cfg = cfg
        self._regions: list[_Region] = []
        self._cooldown: list[tuple[Box, float]] = []

    def update(self, t: float, at: datetime, detections: Detections) -> list[IncidentChange]:
        cfg = self._cfg
        keep = (detections.class_id == int(self._label)) & (detections.confidence >= cfg.fire_min_confidence)
        hits = detections[keep]
        matched = self._match(hits)
        for region, hit in matched.items():
            region.box, region.confidence, region.last_hit_t = hit.box, hit.confidence, t
        out: list[IncidentChange] = []
        for region in self._regions:
            region.window.append(region in matched)
            seen = matched.get(region)
            region.looks.append((seen.flicker, seen.luma, seen.box) if seen else (float("nan"), float("nan"), []))
            while len(region.looks) > cfg.fire_window_m:
                region.looks.popleft()
            confirmed = sum(region.window) >= cfg.fire_confirm_n and self._looks_like_flames(region)
            if region.incident is None and confirmed and not self._cooling(region.box, t):
                region.incident = _open(self._type, self._severity, at, None, None)
                out.append(self._emit(region, IncidentState.START, t, at))
            elif (
                region.incident is not None
                and region in matched
                and t - region.incident.last_emit_t >= cfg.update_every_s
            ):
                out.append(self._emit(region, IncidentState.UPDATE, t, at))
        out += self._expire(t, at)
        return out

    def _match(self, hits: Detections) -> dict[_Region, _Hit]:
        matched: dict[_Region, _Hit] = {}
        flicker = hits.data.get("flicker")
        luma = hits.data.get("luma")
        for i in np.argsort(-hits.confidence):
            hit = _Hit(
                [round(float(v), 1) for v in hits.xyxy[i]],
                float(hits.confidence[i]),
                float(flicker[i]) if flicker is not None else float("nan"),
                float(luma[i]) if luma is not None else float("nan"),
            )
            candidates = [r for r in self._regions if _near(r.box, hit.box)]
            if candidates:
                region = max(candidates, key=lambda r: iou(r.box, hit.box))
                if region in matched:  # a second box of the same region: grow it, keep the best box's looks
                    prev = matched[region]
                    b = [min(prev.box[0], hit.box[0]), min(prev.box[1], hit.box[1]),
                         max(prev.box[2], hit.box[2]), max(prev.box[3], hit.box[3])]  # fmt: skip
                    hit = _Hit(b, prev.confidence, prev.flicker, prev.luma)
                matched[region] = hit
            else:
                region = _Region(hit.box, deque(maxlen=self._cfg.fire_window_m), -1.0, hit.confidence)
                self._regions.append(region)
                matched[region] = hit
        return matched

    def _looks_like_flames(self, region: _Region) -> bool:
        """The temporal check over the region's window (True when off or when nothing was measured)."""
        cfg = self._cfg
        hits = [(f, lu, b) for f, lu, b in region.looks if b]
        lumas = [lu for _, lu, _ in hits if np.isfinite(lu)]
        if cfg.fire_min_flicker <= 0 or not lumas:
            return True
        flickers = [f for f, _, _ in hits if np.isfinite(f)]
        if not flickers or float(np.median(flickers)) < cfg.fire_min_flicker:
            return False
        if (max(lumas) - min(lumas)) / max(float(np.mean(lumas)), 1.0) > cfg.fire_max_luma_swing:
            return False
        # how far any edge of the box travelled (an edge, not the centre: a light entering the picture has
        # one edge pinned to the frame border while the other moves)
        first, last = hits[0][2], hits[-1][2]
        height = max(float(np.mean([b[3] - b[1] for _, _, b in hits])), 1.0)
        drift = max(abs(a - b) for a, b in zip(first, last, strict=True))
        return drift / height <= cfg.fire_max_drift

    def _cooling(self, box: Box, t: float) -> bool:
        self._cooldown = [(b, until) for b, until in self._cooldown if until > t]
        return any(_near(b, box) for b, _ in self._cooldown)

    @staticmethod
    def _emit(region: _Region, state: IncidentState, t: float, at: datetime) -> IncidentChange:
        assert region.incident is not None
        inc = region.incident
        inc.last_emit_t, inc.last_box, inc.confidence = t, region.box, max(inc.confidence, region.confidence)
        return inc.change(state, at)

    def _expire(self, t: float, at: datetime) -> list[IncidentChange]:
        out: list[IncidentChange] = []
        alive: list[_Region] = []
        for region in self._regions:
            gone = t - region.last_hit_t >= self._cfg.end_after_s and not any(region.window)
            if not gone:
                alive.append(region)
                continue
            if region.incident is not None:
                out.append(region.incident.change(IncidentState.END, at))
                self._cooldown.append((region.box, t + self._cfg.cooldown_s))
        self._regions = alive
        return out

    def close(self, at: datetime) -> list[IncidentChange]:
        out = [r.incident.change(IncidentState.END, at) for r in self._regions if r.incident is not None]
        self._regions.clear()
        return out
