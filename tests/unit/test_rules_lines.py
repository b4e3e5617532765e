"""Line crossing (direction, hysteresis against jitter, counts per period) and crowding, fed frame by frame."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from core.analytics_config import CrowdRule, Tripwire
from core.config import Zone
from core.detections import Detections
from core.labels import Label
from event_bus.events import IncidentState, IncidentType
from worker.incident_change import IncidentChange
from worker.lines import PixelPolyline, SideTracker
from worker.rules_lines import CrowdingRule, LineCrossingRule, PeriodCounts
from worker.zones import scale_zones

T0 = datetime(2026, 1, 1, tzinfo=UTC)
W, H = 200, 100
# A vertical line at x = 100 px from top to bottom; facing down the line, "right" is the left half of the picture.
LINE = Tripwire(name="gate", points=[(0.5, 0.0), (0.5, 1.0)], in_side="right", band=0.05)  # band 10 px


def track(*items: tuple[int, float, float], label: Label = Label.PERSON) -> Detections:
    """(track id, x centre, feet y) -> 10x20 boxes."""
    if not items:
        return Detections.empty().with_tracker_id(np.zeros(0))
    xyxy = np.array([[x - 5, y - 20, x + 5, y] for _, x, y in items], np.float32)
    n = len(items)
    return Detections(xyxy, np.full(n, 0.8), np.full(n, int(label)), np.array([t for t, _, _ in items]))


def feed(
    rule: LineCrossingRule, frames: list[Detections], dt: float = 0.2
) -> tuple[list[IncidentChange], list[PeriodCounts]]:
    changes: list[IncidentChange] = []
    periods: list[PeriodCounts] = []
    for i, det in enumerate(frames):
        c, p = rule.update(i * dt, T0 + timedelta(seconds=i * dt), det)
        changes += c
        periods += p
    return changes, periods


def starts(changes: list[IncidentChange]) -> list[IncidentChange]:
    return [c for c in changes if c.state is IncidentState.START]


def test_a_walk_across_gives_one_crossing_with_direction_track_and_count() -> None:
    rule = LineCrossingRule([LINE], W, H)
    # track 1 walks right to left (to the "right" side facing down the line, i.e. in); track 2 the other way
    frames = [track((1, 180 - 10 * k, 80), (2, 20 + 10 * k, 60)) for k in range(17)]
    changes, _ = feed(rule, frames)
    got = sorted((c.track_id, c.analytics.line_crossing.direction) for c in starts(changes))  # type: ignore[union-attr]
    assert got == [(1, "in"), (2, "out")]
    for c in starts(changes):
        assert c.type is IncidentType.LINE_CROSSING and c.zone == "gate"
        assert c.analytics is not None and c.analytics.line_crossing is not None
        assert c.analytics.line_crossing.count == 1 and c.analytics.line_crossing.label == "person"
    # each crossing is an instant: start and end of the same incident
    assert len(changes) == 4 and {c.incident_id for c in changes} == {c.incident_id for c in starts(changes)}


def test_jitter_on_the_line_does_not_double_count_with_the_band_but_would_without() -> None:
    """A person stands on the line, wobbling 6 px either side of it (inside the 10 px band), then walks on."""
    path = [150.0, 130.0, 110.0] + [100 + (6 if k % 2 else -6) for k in range(20)] + [80.0, 60.0, 40.0]
    frames = [track((7, x, 80)) for x in path]
    with_band, _ = feed(LineCrossingRule([LINE], W, H), frames)
    assert [c.analytics.line_crossing.direction for c in starts(with_band)] == ["in"]  # type: ignore[union-attr]
    no_band = Tripwire(name="gate", points=[(0.5, 0.0), (0.5, 1.0)], in_side="right", band=0.0)
    without, _ = feed(LineCrossingRule([no_band], W, H), frames)
    assert len(starts(without)) > 10, "the test must show jitter that a band-less line would count many times"


def test_wobbling_back_out_of_the_band_on_the_same_side_counts_nothing() -> None:
    path = [150.0, 120.0, 104.0, 96.0, 104.0, 115.0, 140.0]  # touches the band, never leaves it on the other side
    changes, _ = feed(LineCrossingRule([LINE], W, H), [track((3, x, 80)) for x in path])
    assert starts(changes) == []


def test_going_round_the_end_of_a_short_line_is_no_crossing() -> None:
    short = Tripwire(name="door", points=[(0.5, 0.0), (0.5, 0.4)], in_side="left", band=0.0)  # top 40 px only
    changes, _ = feed(LineCrossingRule([short], W, H), [track((4, x, 90)) for x in range(180, 0, -20)])
    assert starts(changes) == []


def test_only_chosen_labels_count_and_counts_roll_per_period_with_zeros() -> None:
    cars = Tripwire(name="road", points=[(0.5, 0.0), (0.5, 1.0)], in_side="left", labels=["car"], band=0.0, alert=False)
    rule = LineCrossingRule([cars], W, H, period_s=60.0)
    frames = [track((1, 180 - 20 * k, 50), label=Label.CAR) for k in range(9)]
    frames += [track((2, 180 - 20 * k, 50), label=Label.PERSON) for k in range(9)]
    changes, periods = feed(rule, frames, dt=1.0)
    assert changes == []  # alert off: counted, not raised
    _, periods = rule.update(61.0, T0 + timedelta(seconds=61), track())
    assert len(periods) == 1 and periods[0].complete
    assert periods[0].counts == {("road", "in", "car"): 0, ("road", "out", "car"): 1}
    assert periods[0].start == T0 and periods[0].end == T0 + timedelta(seconds=60)
    closing = rule.close(T0 + timedelta(seconds=70))
    assert not closing[0].complete and closing[0].counts[("road", "out", "car")] == 0


def test_crossing_time_is_interpolated_between_frames() -> None:
    tracker = SideTracker(PixelPolyline([(0.5, 0.0), (0.5, 1.0)], W, H), band_px=0.0)
    tracker.update(0.0, np.array([9]), np.array([[90.0, 50.0]]))
    crossings = tracker.update(1.0, np.array([9]), np.array([[130.0, 50.0]]))
    assert len(crossings) == 1 and crossings[0].t == pytest.approx(0.25) and crossings[0].to_side == -1


ZONE = Zone(name="square", polygon=[(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)])


def crowd(n: int, outside: int = 0) -> Detections:
    inside = [(i, 10.0 + 15 * i, 90.0) for i in range(n)]
    out = [(100 + i, 10.0 + 15 * i, 30.0) for i in range(outside)]
    return track(*inside, *out)


def test_crowding_starts_after_t_seconds_over_n_updates_with_peak_and_ends() -> None:
    rule = CrowdingRule([CrowdRule(zone="square", max_persons=3, for_s=2.0)], scale_zones([ZONE], W, H), 1.0, 1.0)
    counts = [3] * 5 + [4] * 12 + [6] * 3 + [4] * 3 + [2] * 10  # at 0.2 s a frame
    out: list[IncidentChange] = []
    for i, n in enumerate(counts):
        out += rule.update(i * 0.2, T0 + timedelta(seconds=i * 0.2), crowd(n, outside=5))
    states = [c.state for c in out]
    assert states[0] is IncidentState.START and states[-1] is IncidentState.END
    assert states.count(IncidentState.START) == 1 and states.count(IncidentState.END) == 1
    start = out[0]
    assert start.type is IncidentType.CROWDING and start.zone == "square"
    assert start.analytics is not None and start.analytics.crowd is not None
    assert start.analytics.crowd.count == 4 and start.analytics.crowd.limit == 3
    # 4 people from frame 5 (t = 1.0): the crowd starts once it has lasted 2 s, at t = 3.0 (frame 15)
    assert start.observed_at == T0 + timedelta(seconds=3.0)
    end = out[-1]
    assert end.analytics is not None and end.analytics.crowd is not None and end.analytics.crowd.peak == 6
    assert rule.occupancy == {"square": 2}  # people outside the zone never count


def test_a_dip_below_the_limit_restarts_the_wait() -> None:
    rule = CrowdingRule([CrowdRule(zone="square", max_persons=2, for_s=1.0)], scale_zones([ZONE], W, H), 1.0, 1.0)
    counts = ([3] * 4 + [2]) * 4  # never over the limit for a whole second
    out: list[IncidentChange] = []
    for i, n in enumerate(counts):
        out += rule.update(i * 0.2, T0 + timedelta(seconds=i * 0.2), crowd(n))
    assert out == []
