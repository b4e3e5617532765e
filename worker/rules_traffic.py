"""Traffic offences from vehicle tracks: stopped in a no-stopping zone, wrong way, section speeding.

The tracks are the plate reader's vehicle passes (a plate box followed over
frames, or the vehicle box holding it), so no new model is needed: a pass
already has an identity (its voted plate) and a trajectory. Each offence
carries the plate voted so far and its confidence; a track without a read
plate still raises the offence, with no plate.

Section control measures time between two calibrated lines from the stream
clock (presentation times, not arrival times) and interpolates each crossing
between the two frames around it, so the figure does not depend on the
analysis rate. Both crossing times go into the event, derived from one
anchor, so ``distance_m / (exited_at - entered_at)`` gives the stored speed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from core.analytics_config import AnalyticsConfig, Lane, NoStoppingZone, SpeedSection
from event_bus.analytics_events import AnalyticsDetails, TrafficDetails
from event_bus.events import IncidentState, IncidentType, new_event_id
from worker.incident_change import IncidentChange, TimedIncident, next_change
from worker.lines import PixelPolyline, SideTracker
from worker.rules_lines import _instant
from worker.zones import PixelZone

Box = list[float]
PlateLookup = Callable[[int], tuple[str, float] | None]
"""Track id -> (voted plate, confidence) so far, or None when nothing was read yet."""


@dataclass(frozen=True)
class VehicleTracks:
    """One frame's vehicle tracks: ids, boxes (N×4), the point that stands for each (N×2), detector confidence."""

    ids: npt.NDArray[np.int64]
    boxes: npt.NDArray[np.float32]
    points: npt.NDArray[np.float64]
    confidence: npt.NDArray[np.float32]


@dataclass
class _Stop:
    ref: tuple[float, float]
    still_since: float
    last_t: float
    incident: TimedIncident | None = None


@dataclass
class _Against:
    prev: tuple[float, float]
    frames: int
    last_t: float
    incident: TimedIncident | None = None


def _plate_details(plate_of: PlateLookup, track: int, **fields: Any) -> TrafficDetails:
    plate = plate_of(track)
    if plate is None:
        return TrafficDetails(**fields)
    return TrafficDetails(plate=plate[0], plate_confidence=round(plate[1], 4), **fields)


@dataclass
class TrafficRules:
    """Every traffic rule of one camera, for one stream resolution."""

    cfg: AnalyticsConfig
    zones: list[PixelZone]
    width: int
    update_every_s: float
    end_after_s: float
    height: int = 0
    _stops: dict[tuple[str, int], _Stop] = field(default_factory=dict)
    _against: dict[tuple[str, int], _Against] = field(default_factory=dict)
    _sections: list[tuple[SpeedSection, SideTracker, SideTracker]] = field(default_factory=list)
    _entered: dict[tuple[str, int], tuple[float, datetime, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        height = self.height or self.width
        for sec in self.cfg.speed_sections:
            entry = SideTracker(PixelPolyline(sec.entry, self.width, height), band_px=0.0, forget_s=60.0)
            exit_ = SideTracker(PixelPolyline(sec.exit, self.width, height), band_px=0.0, forget_s=60.0)
            self._sections.append((sec, entry, exit_))

    def _zone(self, name: str) -> PixelZone:
        return next(z for z in self.zones if z.name == name)

    def update(self, t: float, at: datetime, tracks: VehicleTracks, plate_of: PlateLookup) -> list[IncidentChange]:
        out: list[IncidentChange] = []
        for rule in self.cfg.no_stopping:
            out += self._stopped(rule, t, at, tracks, plate_of)
        for lane in self.cfg.lanes:
            out += self._wrong_way(lane, t, at, tracks, plate_of)
        out += self._speed(t, at, tracks, plate_of)
        out += self._expire(t, at, plate_of)
        return out

    # -- stopped_vehicle --------------------------------------------------------------------------------------

    def _stopped(
        self, rule: NoStoppingZone, t: float, at: datetime, tracks: VehicleTracks, plate_of: PlateLookup
    ) -> list[IncidentChange]:
        out: list[IncidentChange] = []
        zone = self._zone(rule.zone)
        inside = _contains(zone, tracks.points)
        still_px = rule.still_within * self.width
        for i in range(len(tracks.ids)):
            track, key = int(tracks.ids[i]), (rule.zone, int(tracks.ids[i]))
            point = (float(tracks.points[i, 0]), float(tracks.points[i, 1]))
            stop = self._stops.get(key)
            if not inside[i]:
                if stop is not None:
                    out += self._end_stop(rule, key, at, tracks.boxes[i], plate_of)
                continue
            if stop is None:
                self._stops[key] = _Stop(point, t, t)
                continue
            stop.last_t = t
            if np.hypot(point[0] - stop.ref[0], point[1] - stop.ref[1]) > still_px:
                out += self._end_stop(rule, key, at, tracks.boxes[i], plate_of)
                self._stops[key] = _Stop(point, t, t)
                continue
            standing = t - stop.still_since
            box = [round(float(v), 1) for v in tracks.boxes[i]]
            if stop.incident is None and standing > rule.stopped_s:
                kind = IncidentType.STOPPED_VEHICLE
                stop.incident = TimedIncident(new_event_id(), at, kind, rule.severity, rule.zone, last_emit_t=t)
                out.append(self._stop_change(rule, stop, IncidentState.START, at, track, box, standing, plate_of))
            elif stop.incident is not None and t - stop.incident.last_emit_t >= self.update_every_s:
                stop.incident.last_emit_t = t
                out.append(self._stop_change(rule, stop, IncidentState.UPDATE, at, track, box, standing, plate_of))
        return out

    def _end_stop(
        self, rule: NoStoppingZone, key: tuple[str, int], at: datetime, box: object, plate_of: PlateLookup
    ) -> list[IncidentChange]:
        stop = self._stops.pop(key)
        if stop.incident is None:
            return []
        standing = stop.last_t - stop.still_since
        boxes = [round(float(v), 1) for v in np.asarray(box).ravel()[:4]]
        return [self._stop_change(rule, stop, IncidentState.END, at, key[1], boxes, standing, plate_of)]

    def _stop_change(
        self,
        rule: NoStoppingZone,
        stop: _Stop,
        state: IncidentState,
        at: datetime,
        track: int,
        box: Box,
        standing: float,
        plate_of: PlateLookup,
    ) -> IncidentChange:
        assert stop.incident is not None
        details = _plate_details(plate_of, track, stopped_s=round(max(standing, 0.0), 2))
        return _change(stop.incident, state, at, track, box, details)

    # -- wrong_way --------------------------------------------------------------------------------------------

    def _wrong_way(
        self, lane: Lane, t: float, at: datetime, tracks: VehicleTracks, plate_of: PlateLookup
    ) -> list[IncidentChange]:
        out: list[IncidentChange] = []
        inside = _contains(self._zone(lane.zone), tracks.points)
        direction = np.asarray(lane.direction, dtype=np.float64)
        step_px = lane.min_step * self.width
        for i in np.flatnonzero(inside):
            track, key = int(tracks.ids[i]), (lane.name, int(tracks.ids[i]))
            point = (float(tracks.points[i, 0]), float(tracks.points[i, 1]))
            state = self._against.get(key)
            if state is None:
                self._against[key] = _Against(point, 0, t)
                continue
            state.last_t = t
            step = np.subtract(point, state.prev)
            if np.hypot(*step) < step_px:
                continue  # too little movement to tell a direction: keep the reference point
            state.prev = point
            state.frames = state.frames + 1 if float(step @ direction) < 0 else 0
            if state.incident is None and state.frames >= lane.min_frames:
                kind = IncidentType.WRONG_WAY
                state.incident = TimedIncident(new_event_id(), at, kind, lane.severity, lane.zone, last_emit_t=t)
                box = [round(float(v), 1) for v in tracks.boxes[i]]
                details = _plate_details(plate_of, track, lane=lane.name, frames_against=state.frames)
                out.append(_change(state.incident, IncidentState.START, at, track, box, details))
        return out

    # -- speeding ---------------------------------------------------------------------------------------------

    def _speed(self, t: float, at: datetime, tracks: VehicleTracks, plate_of: PlateLookup) -> list[IncidentChange]:
        out: list[IncidentChange] = []
        for sec, entry, exit_ in self._sections:
            for c in entry.update(t, tracks.ids, tracks.points):
                self._entered[(sec.name, c.track)] = (c.t, at, t)
            for c in exit_.update(t, tracks.ids, tracks.points):
                started = self._entered.pop((sec.name, c.track), None)
                if started is None or c.t <= started[0]:
                    continue
                seconds = c.t - started[0]
                speed = sec.distance_m / seconds * 3.6
                if speed <= sec.limit_kmh + sec.tolerance_kmh:
                    continue
                # both instants from this frame's capture time, so exited - entered is exactly `seconds`
                exited_at = at + timedelta(seconds=c.t - t)
                entered_at = exited_at - timedelta(seconds=seconds)
                seconds = (exited_at - entered_at).total_seconds()
                i = int(np.flatnonzero(tracks.ids == c.track)[0])
                details = _plate_details(
                    plate_of,
                    c.track,
                    section=sec.name,
                    speed_kmh=round(sec.distance_m / seconds * 3.6, 3),
                    limit_kmh=sec.limit_kmh,
                    distance_m=sec.distance_m,
                    entered_at=entered_at,
                    exited_at=exited_at,
                )
                box = [round(float(v), 1) for v in tracks.boxes[i]]
                conf = details.plate_confidence if details.plate_confidence is not None else float(tracks.confidence[i])
                found = AnalyticsDetails(traffic=details)
                out += _instant(IncidentType.SPEEDING, sec.severity, at, c.track, box, conf, found, zone=sec.name)
        self._entered = {k: v for k, v in self._entered.items() if t - v[2] <= 600.0}
        return out

    # -- lifetime ---------------------------------------------------------------------------------------------

    def _expire(self, t: float, at: datetime, plate_of: PlateLookup) -> list[IncidentChange]:
        out: list[IncidentChange] = []
        for key, stop in list(self._stops.items()):
            if t - stop.last_t >= self.end_after_s:
                rule = next(r for r in self.cfg.no_stopping if r.zone == key[0])
                out += self._end_stop(rule, key, at, np.zeros(4), plate_of)
        for key, state in list(self._against.items()):
            if t - state.last_t >= self.end_after_s:
                del self._against[key]
                if state.incident is not None:
                    lane = next(ln for ln in self.cfg.lanes if ln.name == key[0])
                    details = _plate_details(plate_of, key[1], lane=lane.name, frames_against=max(state.frames, 1))
                    out.append(_change(state.incident, IncidentState.END, at, key[1], [], details))
        return out

    def close(self, at: datetime, plate_of: PlateLookup) -> list[IncidentChange]:
        """End every open offence (camera stopped or reconfigured)."""
        return self._expire(float("inf"), at, plate_of)


def _contains(zone: PixelZone, points: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    import shapely

    if len(points) == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray(shapely.contains_xy(zone.polygon, points[:, 0], points[:, 1]), dtype=bool)


def _change(
    inc: TimedIncident, state: IncidentState, at: datetime, track: int, box: Box, details: TrafficDetails
) -> IncidentChange:
    conf = details.plate_confidence if details.plate_confidence is not None else 0.5
    boxes = [box] if len(box) == 4 and any(box) else []
    return next_change(inc, state, at, track, boxes, conf, AnalyticsDetails(traffic=details))
