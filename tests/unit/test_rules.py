"""Incident rules driven frame by frame: zone entry, loitering, fire confirmation, cooldown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from core.config import RulesConfig, Zone
from core.detections import Detections
from core.labels import Label
from event_bus.events import IncidentState, IncidentType
from worker.incident_change import IncidentChange
from worker.rules import FireRule, PersonZoneRule
from worker.zones import scale_zones

T0 = datetime(2026, 1, 1, tzinfo=UTC)
W, H = 100, 100
# Lower half of the frame.
ZONE = Zone(name="road", polygon=[(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)], severity="medium")


def people(*items: tuple[int, float, float]) -> Detections:
    """(track id, x centre, feet y) -> 10x20 boxes."""
    if not items:
        return Detections.empty().with_tracker_id(np.zeros(0))
    xyxy = np.array([[x - 5, y - 20, x + 5, y] for _, x, y in items], np.float32)
    return Detections(xyxy, np.full(len(items), 0.8), np.zeros(len(items)), np.array([t for t, _, _ in items]))


def run(rule: PersonZoneRule, frames: list[Detections], dt: float = 0.1) -> list[IncidentChange]:
    out: list[IncidentChange] = []
    for i, det in enumerate(frames):
        out += rule.update(i * dt, T0 + timedelta(seconds=i * dt), det)
    return out


def cfg(**kw: float) -> RulesConfig:
    base = {"loiter_seconds": 5.0, "end_after_s": 1.0, "update_every_s": 2.0, "cooldown_s": 10.0}
    base.update(kw)
    return RulesConfig(**base)  # type: ignore[arg-type]


def test_walker_crossing_gives_one_start_and_one_end() -> None:
    rule = PersonZoneRule(scale_zones([ZONE], W, H), cfg())
    walk = [people((7, 50, 30 + i * 5)) for i in range(14)]  # feet cross y=50 at frame 4 and stay
    walk += [people() for _ in range(15)]  # leaves the picture
    changes = run(rule, walk)
    starts = [c for c in changes if c.state is IncidentState.START]
    ends = [c for c in changes if c.state is IncidentState.END]
    assert [c.type for c in starts] == [IncidentType.PERSON_IN_ZONE]
    assert len(ends) == 1 and ends[0].incident_id == starts[0].incident_id
    assert starts[0].track_id == 7 and starts[0].zone == "road"
    # Started on the second frame inside the zone (feet y=55 at frame 5).
    assert starts[0].observed_at == T0 + timedelta(seconds=0.6)


def test_person_outside_zone_gives_nothing() -> None:
    rule = PersonZoneRule(scale_zones([ZONE], W, H), cfg())
    assert run(rule, [people((1, 50, 40)) for _ in range(30)]) == []


def test_new_track_id_for_same_walker_continues_the_incident() -> None:
    rule = PersonZoneRule(scale_zones([ZONE], W, H), cfg())
    frames = [people((1, 50, 70)) for _ in range(5)]
    frames += [people() for _ in range(3)]  # tracker loses them for 0.3 s ...
    frames += [people((2, 52, 71)) for _ in range(5)]  # ... and comes back with id 2, same place
    frames += [people() for _ in range(15)]
    changes = run(rule, frames)
    assert len({c.incident_id for c in changes}) == 1
    assert [c.state for c in changes if c.state is not IncidentState.UPDATE] == [IncidentState.START, IncidentState.END]
    assert changes[-1].track_id == 2


def test_two_people_two_incidents() -> None:
    rule = PersonZoneRule(scale_zones([ZONE], W, H), cfg())
    changes = run(rule, [people((1, 20, 70), (2, 80, 70)) for _ in range(4)])
    assert sorted(c.track_id for c in changes if c.state is IncidentState.START) == [1, 2]


def test_loitering_after_threshold_and_updates_are_rate_limited() -> None:
    rule = PersonZoneRule(scale_zones([ZONE], W, H), cfg(loiter_seconds=3.0, update_every_s=1.0))
    changes = run(rule, [people((3, 50, 80)) for _ in range(50)])  # 5 s in the zone
    loiter = [c for c in changes if c.type is IncidentType.LOITERING]
    assert loiter[0].state is IncidentState.START
    assert loiter[0].observed_at - T0 == timedelta(seconds=3.0)
    assert loiter[0].severity == "high"  # one step above the zone's
    entry_updates = [c for c in changes if c.type is IncidentType.PERSON_IN_ZONE and c.state is IncidentState.UPDATE]
    assert 3 <= len(entry_updates) <= 5
    assert [c.seq for c in entry_updates] == list(range(1, len(entry_updates) + 1))


def test_cooldown_blocks_reentry_of_same_track() -> None:
    rule = PersonZoneRule(scale_zones([ZONE], W, H), cfg(cooldown_s=100.0))
    frames = [people((4, 50, 70)) for _ in range(5)]
    frames += [people((4, 50, 30)) for _ in range(15)]  # steps out for 1.5 s: incident ends
    frames += [people((4, 50, 70)) for _ in range(5)]  # steps back in: no second alert
    starts = [c for c in run(rule, frames) if c.state is IncidentState.START]
    assert len(starts) == 1


def fire(boxes: list[tuple[float, float, float, float]], conf: float = 0.8, label: Label = Label.FIRE) -> Detections:
    if not boxes:
        return Detections.empty()
    return Detections(np.array(boxes, np.float32), np.full(len(boxes), conf), np.full(len(boxes), int(label)))


def run_fire(rule: FireRule, frames: list[Detections], dt: float = 1.0) -> list[IncidentChange]:
    out: list[IncidentChange] = []
    for i, det in enumerate(frames):
        out += rule.update(i * dt, T0 + timedelta(seconds=i * dt), det)
    return out


def test_fire_confirmed_in_n_of_m_frames_once() -> None:
    rule = FireRule(Label.FIRE, cfg(fire_confirm_n=3, fire_window_m=5, end_after_s=3.0))
    box = (10, 10, 40, 50)
    frames = [fire([box]), fire([]), fire([box]), fire([(12, 8, 42, 52)]), fire([box]), fire([box])]
    frames += [fire([]) for _ in range(10)]
    changes = run_fire(rule, frames)
    assert [c.state for c in changes if c.state is not IncidentState.UPDATE] == [IncidentState.START, IncidentState.END]
    start = changes[0]
    assert start.type is IncidentType.FIRE and start.severity == "critical"
    assert start.observed_at == T0 + timedelta(seconds=3)  # third hit


def test_flicker_below_n_of_m_is_not_confirmed() -> None:
    rule = FireRule(Label.FIRE, cfg(fire_confirm_n=3, fire_window_m=5))
    frames = [fire([(10, 10, 40, 50)]) if i % 3 == 0 else fire([]) for i in range(30)]
    assert run_fire(rule, frames) == []


def test_low_confidence_and_other_classes_ignored() -> None:
    rule = FireRule(Label.FIRE, cfg(fire_confirm_n=2, fire_window_m=3, fire_min_confidence=0.5))
    frames = [fire([(10, 10, 40, 50)], conf=0.3) for _ in range(5)]
    frames += [fire([(10, 10, 40, 50)], label=Label.SMOKE) for _ in range(5)]
    assert run_fire(rule, frames) == []


def test_two_separate_fires_two_incidents() -> None:
    rule = FireRule(Label.FIRE, cfg(fire_confirm_n=2, fire_window_m=3))
    changes = run_fire(rule, [fire([(0, 0, 10, 10), (80, 80, 95, 95)]) for _ in range(3)])
    assert len([c for c in changes if c.state is IncidentState.START]) == 2


def test_smoke_rule_gives_smoke_incident() -> None:
    rule = FireRule(Label.SMOKE, cfg(fire_confirm_n=2, fire_window_m=3))
    changes = run_fire(rule, [fire([(0, 0, 50, 50)], label=Label.SMOKE) for _ in range(3)])
    assert changes[0].type is IncidentType.SMOKE and changes[0].severity == "high"
