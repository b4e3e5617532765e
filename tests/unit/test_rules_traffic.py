"""Traffic offences on vehicle tracks fed frame by frame: stopped, wrong way, section speed; each with a negative."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from core.analytics_config import AnalyticsConfig, Lane, NoStoppingZone, SpeedSection
from core.config import Zone
from event_bus.events import IncidentState, IncidentType
from worker.incident_change import IncidentChange
from worker.rules_traffic import PlateLookup, TrafficRules, VehicleTracks
from worker.zones import scale_zones

T0 = datetime(2026, 1, 1, tzinfo=UTC)
W, H = 400, 200
HALF = np.array([10.0, 4.0])  # half a plate box
ZONES = [
    Zone(name="bus-stop", polygon=[(0.5, 0.5), (1.0, 0.5), (1.0, 1.0), (0.5, 1.0)]),
    Zone(name="road", polygon=[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]),
]


def plate_of(track: int) -> tuple[str, float] | None:
    return {1: ("123ABC02", 0.93)}.get(track)


def tracks(*items: tuple[int, float, float]) -> VehicleTracks:
    """(track id, x, y) of each plate centre -> 20x8 boxes."""
    ids = np.array([i for i, _, _ in items], np.int64)
    pts = np.array([(x, y) for _, x, y in items], np.float64).reshape(-1, 2)
    boxes = np.hstack([pts - HALF, pts + HALF]).astype(np.float32)
    return VehicleTracks(ids, boxes, pts, np.full(len(items), 0.9, np.float32))


def rules(cfg: AnalyticsConfig) -> TrafficRules:
    return TrafficRules(cfg, scale_zones(ZONES, W, H), W, update_every_s=5.0, end_after_s=1.0, height=H)


def run(
    rule: TrafficRules, frames: list[VehicleTracks], dt: float = 0.2, lookup: PlateLookup = plate_of
) -> list[IncidentChange]:
    out: list[IncidentChange] = []
    for i, f in enumerate(frames):
        out += rule.update(i * dt, T0 + timedelta(seconds=i * dt), f, lookup)
    return out


def test_stopped_vehicle_in_the_zone_after_t_seconds_with_plate_and_not_outside() -> None:
    cfg = AnalyticsConfig(no_stopping=[NoStoppingZone(zone="bus-stop", stopped_s=3.0)])
    # track 1 stops in the zone (small jitter); track 2 stops as long outside it; 6 s at 5 fps, then both leave
    frames = [tracks((1, 300 + (k % 2), 150), (2, 100, 150)) for k in range(30)] + [tracks()] * 10
    out = run(rules(cfg), frames)
    starts = [c for c in out if c.state is IncidentState.START]
    assert [(c.type, c.track_id, c.zone) for c in starts] == [(IncidentType.STOPPED_VEHICLE, 1, "bus-stop")]
    start = starts[0]
    assert start.analytics is not None and start.analytics.traffic is not None
    assert start.analytics.traffic.plate == "123ABC02" and start.analytics.traffic.plate_confidence == 0.93
    assert start.observed_at - T0 > timedelta(seconds=3.0) and start.analytics.traffic.stopped_s > 3.0  # type: ignore[operator]
    assert out[-1].state is IncidentState.END and out[-1].incident_id == start.incident_id


def test_a_vehicle_rolling_through_the_zone_is_not_stopped() -> None:
    cfg = AnalyticsConfig(no_stopping=[NoStoppingZone(zone="bus-stop", stopped_s=1.0)])
    assert run(rules(cfg), [tracks((1, 210 + 10 * k, 150)) for k in range(19)]) == []


def test_wrong_way_after_k_frames_against_the_lane_and_not_for_the_right_way() -> None:
    cfg = AnalyticsConfig(lanes=[Lane(name="eastbound", zone="road", direction=(1.0, 0.0), min_frames=4)])
    wrong = run(rules(cfg), [tracks((1, 380 - 15 * k, 100)) for k in range(20)])
    starts = [c for c in wrong if c.state is IncidentState.START]
    assert len(starts) == 1 and starts[0].type is IncidentType.WRONG_WAY
    traffic = starts[0].analytics.traffic  # type: ignore[union-attr]
    assert traffic is not None and traffic.lane == "eastbound" and traffic.frames_against == 4
    assert traffic.plate == "123ABC02"
    assert starts[0].observed_at == T0 + timedelta(seconds=4 * 0.2)  # the 4th step against the lane
    right = run(rules(cfg), [tracks((1, 20 + 15 * k, 100)) for k in range(20)])
    assert right == []


def test_wrong_way_needs_k_consecutive_frames() -> None:
    cfg = AnalyticsConfig(lanes=[Lane(name="eastbound", zone="road", direction=(1.0, 0.0), min_frames=4)])
    xs = [200, 190, 180, 170, 180, 170, 160, 150, 160]  # three steps back, one forward, three back, ...
    assert run(rules(cfg), [tracks((1, x, 100)) for x in xs]) == []


SECTION = SpeedSection(
    name="s1", entry=[(0.25, 0.0), (0.25, 1.0)], exit=[(0.75, 0.0), (0.75, 1.0)], distance_m=50.0, limit_kmh=60.0
)


@pytest.mark.parametrize("px_per_frame", [7.3, 11.0, 23.0])
def test_section_speed_is_the_calibrated_distance_over_interpolated_crossing_times(px_per_frame: float) -> None:
    """200 px between the lines are 50 m; at 5 fps, p px a frame is 50 m in 200 / (5 p) s."""
    frames = [tracks((1, 10 + px_per_frame * k, 100)) for k in range(int(390 / px_per_frame))]
    out = run(rules(AnalyticsConfig(speed_sections=[SECTION])), frames)
    truth_kmh = 50.0 / (200.0 / (5 * px_per_frame)) * 3.6
    if truth_kmh <= 60.0:
        assert out == []
        return
    assert [c.state for c in out] == [IncidentState.START, IncidentState.END]
    traffic = out[0].analytics.traffic  # type: ignore[union-attr]
    assert traffic is not None and out[0].type is IncidentType.SPEEDING
    assert traffic.speed_kmh == pytest.approx(truth_kmh, rel=1e-6)
    assert traffic.entered_at is not None and traffic.exited_at is not None
    seconds = (traffic.exited_at - traffic.entered_at).total_seconds()
    assert traffic.distance_m == 50.0
    assert traffic.distance_m / seconds * 3.6 == pytest.approx(traffic.speed_kmh, rel=1e-5)
    assert traffic.limit_kmh == 60.0 and traffic.plate == "123ABC02"


def test_exit_before_entry_measures_nothing() -> None:
    frames = [tracks((5, 390 - 23 * k, 100)) for k in range(17)]  # fast, but driving from exit to entry
    assert run(rules(AnalyticsConfig(speed_sections=[SECTION])), frames) == []
