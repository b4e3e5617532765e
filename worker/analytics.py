"""The analytics rules of one camera (lines, crowding, traffic) behind one small hook of the rule set.

:class:`CameraAnalytics` is built with the rule set's geometry and fed what
the rule set already has: the tracked people (and, from a COCO model on an
overview camera, vehicles) of a frame, and the plate reader's passes. It
returns incident changes and line-count events, and keeps
:class:`AnalyticsStats` (shared by the worker's cameras, read at scrape time)
up to date for the metrics.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.config import CameraConfig, RulesConfig
from core.detections import Detections
from core.labels import VEHICLES, Label
from event_bus.events import LineCount, new_event_id
from plate_reader.reader import PlateReader
from worker.incident_change import IncidentChange
from worker.rules_lines import CountKey, CrowdingRule, LineCrossingRule, PeriodCounts
from worker.rules_traffic import TrafficRules, VehicleTracks
from worker.zones import PixelZone

_LineKey = tuple[str, str, str, str]  # camera, line, direction, label


class AnalyticsStats:
    """Line counts and zone occupancy of every camera of a worker, for the metrics endpoint (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._crossings: Counter[_LineKey] = Counter()
        self._last_period: dict[_LineKey, int] = {}
        self._occupancy: dict[tuple[str, str], int] = {}

    def add_crossing(self, camera: str, key: CountKey) -> None:
        with self._lock:
            self._crossings[(camera, *key)] += 1

    def period(self, camera: str, counts: PeriodCounts) -> None:
        if not counts.complete:
            return
        with self._lock:
            for key, n in counts.counts.items():
                self._last_period[(camera, *key)] = n

    def occupancy(self, camera: str, per_zone: dict[str, int]) -> None:
        with self._lock:
            for zone, n in per_zone.items():
                self._occupancy[(camera, zone)] = n

    def forget(self, camera: str) -> None:
        """A camera stopped: its occupancy is no longer known (counters stay, as counters do)."""
        with self._lock:
            self._occupancy = {k: v for k, v in self._occupancy.items() if k[0] != camera}
            self._last_period = {k: v for k, v in self._last_period.items() if k[0] != camera}

    def snapshot(self) -> tuple[dict[_LineKey, int], dict[_LineKey, int], dict[tuple[str, str], int]]:
        with self._lock:
            return dict(self._crossings), dict(self._last_period), dict(self._occupancy)


class AnalyticsCollector(Collector):
    """``kuzet_line_crossings`` (counter), ``kuzet_line_crossings_last_period`` and ``kuzet_zone_occupancy``."""

    def __init__(self, stats: AnalyticsStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        crossings, last, occupancy = self.stats.snapshot()
        labels = ["camera", "line", "direction", "label"]
        total = CounterMetricFamily("kuzet_line_crossings", "Objects that crossed a tripwire", labels=labels)
        for key, n in sorted(crossings.items()):
            total.add_metric(list(key), float(n))
        yield total
        period = GaugeMetricFamily(
            "kuzet_line_crossings_last_period", "Crossings in the last complete count period (1 min)", labels=labels
        )
        for key, n in sorted(last.items()):
            period.add_metric(list(key), float(n))
        yield period
        occ = GaugeMetricFamily("kuzet_zone_occupancy", "People standing in a zone", labels=["camera", "zone"])
        for (camera, zone), n in sorted(occupancy.items()):
            occ.add_metric([camera, zone], float(n))
        yield occ


@dataclass
class CameraAnalytics:
    """Lines, crowding and traffic rules of one camera at one resolution."""

    camera: CameraConfig
    zones: list[PixelZone]
    width: int
    height: int
    rules: RulesConfig
    worker_id: str
    stats: AnalyticsStats
    people: bool = True
    """This camera's model tracks people (lines and crowding run on them); else only traffic runs."""
    vehicles: bool = False
    """This camera's model tracks vehicles itself (no plate view): lines count them and the traffic rules run
    on their tracks, with no plate."""
    lines: LineCrossingRule | None = None
    crowding: CrowdingRule | None = None
    traffic: TrafficRules | None = None
    _plates_seen: dict[int, tuple[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        cfg = self.camera.analytics
        if cfg.lines and (self.people or self.vehicles):
            self.lines = LineCrossingRule(cfg.lines, self.width, self.height, cfg.count_period_s)
        if self.zones and self.people:
            self.crowding = CrowdingRule(cfg.crowding, self.zones, self.rules.update_every_s, self.rules.end_after_s)
        if cfg.traffic and (self.vehicles or not self.people):
            self.traffic = TrafficRules(
                cfg, self.zones, self.width, self.rules.update_every_s, self.rules.end_after_s, height=self.height
            )

    def on_tracks(self, t: float, at: datetime, tracked: Detections) -> tuple[list[IncidentChange], list[LineCount]]:
        """Tracked people and vehicles of one frame -> crossings (each line counts its labels), crowds of people,
        plate-less traffic offences of vehicles, count events."""
        changes: list[IncidentChange] = []
        counts: list[LineCount] = []
        if self.lines is not None:
            crossed, periods = self.lines.update(t, at, tracked)
            changes += crossed
            counts += self._count_events(periods)
            for change in crossed:
                details = change.analytics.line_crossing if change.analytics is not None else None
                if details is not None and change.state.value == "start":
                    self.stats.add_crossing(self.camera.id, (details.line, details.direction, details.label))
        if self.crowding is not None:
            changes += self.crowding.update(t, at, tracked[tracked.class_id == int(Label.PERSON)])
            self.stats.occupancy(self.camera.id, self.crowding.occupancy)
        if self.vehicles and self.traffic is not None:
            changes += self.traffic.update(t, at, _vehicle_tracks(tracked), lambda _track: None)
        return changes, counts

    def on_plates(self, t: float, at: datetime, reader: PlateReader) -> list[IncidentChange]:
        """The plate reader's passes on this frame -> traffic offences with the plate voted so far."""
        if self.traffic is None:
            return []
        tracks = reader.frame_tracks
        ids = np.array([key[1] for key, _, _ in tracks], dtype=np.int64)
        boxes = np.array([box for _, box, _ in tracks], dtype=np.float32).reshape(-1, 4)
        points = np.asarray((boxes[:, :2] + boxes[:, 2:]) / 2, dtype=np.float64)
        conf = np.array([c for _, _, c in tracks], dtype=np.float32)
        keys = {key[1]: key for key, _, _ in tracks}

        def plate_of(track: int) -> tuple[str, float] | None:
            key = keys.get(track)
            vote = reader.voted(key) if key is not None else None
            if vote is not None:
                self._plates_seen[track] = (vote.plate, vote.confidence)
            return self._plates_seen.get(track)

        return self.traffic.update(t, at, VehicleTracks(ids, boxes, points, conf), plate_of)

    def close_vehicles(self, at: datetime) -> list[IncidentChange]:
        """End open offences of a camera whose own model tracks its vehicles (no plate stage to do it)."""
        return self.traffic.close(at, lambda _track: None) if self.vehicles and self.traffic is not None else []

    def _count_events(self, periods: Iterable[PeriodCounts]) -> list[LineCount]:
        out = []
        for p in periods:
            self.stats.period(self.camera.id, p)
            out.append(
                LineCount(
                    event_id=new_event_id(),
                    camera_id=self.camera.id,
                    period_start=p.start,
                    period_end=p.end,
                    complete=p.complete,
                    counts=p.entries(),
                    worker_id=self.worker_id,
                )
            )
        return out

    def close_people(self, at: datetime) -> tuple[list[IncidentChange], list[LineCount]]:
        """End crowds and hand out the period in progress (camera stopped, moved or reconfigured)."""
        changes: list[IncidentChange] = []
        counts: list[LineCount] = []
        if self.lines is not None:
            counts = self._count_events(self.lines.close(at))
        if self.crowding is not None:
            changes += self.crowding.close(at)
            self.stats.forget(self.camera.id)
        return changes, counts

    def close_traffic(self, at: datetime) -> tuple[list[IncidentChange], list[LineCount]]:
        """End open offences (called from the thread that runs :meth:`on_plates`)."""
        return (self.traffic.close(at, self._plates_seen.get) if self.traffic is not None else []), []


def _vehicle_tracks(tracked: Detections) -> VehicleTracks:
    """The tracked vehicles of a frame, each standing at its box centre (as a plate pass does)."""
    ids = tracked.tracker_id if tracked.tracker_id is not None else np.full(len(tracked), -1, np.int64)
    keep = np.isin(tracked.class_id, [int(v) for v in VEHICLES]) & (ids >= 0)
    boxes = tracked.xyxy[keep].astype(np.float32)
    points = np.asarray((boxes[:, :2] + boxes[:, 2:]) / 2, dtype=np.float64)
    return VehicleTracks(ids[keep].astype(np.int64), boxes, points, tracked.confidence[keep].astype(np.float32))
