"""Alert review: schedules, cool-down, zone-episode aggregation and the per-camera alert budget.

Driven with incident changes as the rules make them (pure state machines, stream time ``t``); the
end-to-end flood test (a busy vtest zone replayed for five minutes) is
tests/integration/test_alert_floods.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from core.alerting import AlertPolicy, ArmWindow
from core.config import CameraConfig, ConfigError, RulesConfig, load_config
from event_bus.events import IncidentState, IncidentType, new_event_id
from worker.alerting import AlertGate, CameraBudget, Reviewed
from worker.incident_change import IncidentChange

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday, noon UTC
ZONE = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]


def change(
    iid: UUID, state: IncidentState, t: float, track: int, kind: IncidentType = IncidentType.PERSON_IN_ZONE
) -> IncidentChange:
    at = T0 + timedelta(seconds=t)
    return IncidentChange(
        incident_id=iid,
        type=kind,
        state=state,
        seq=0 if state is IncidentState.START else 1,
        severity="medium",
        started_at=at,
        observed_at=at,
        ended_at=at if state is IncidentState.END else None,
        zone="road",
        track_id=track,
        boxes=[[1.0, 2.0, 3.0, 4.0]],
        confidence=0.8,
    )


def gate(zone_alerting: dict[str, Any] | None = None, budget: int = 0, **rules: Any) -> AlertGate:
    cam = CameraConfig(id="c1", url="rtsp://h/x", zones=[{"name": "road", "polygon": ZONE, "alerting": zone_alerting}])
    cfg = RulesConfig(alert_budget_per_min=budget, **rules)
    return AlertGate(cam, cfg, CameraBudget(budget))


def run(g: AlertGate, events: list[tuple[float, UUID, IncidentState, int]]) -> list[Reviewed]:
    out: list[Reviewed] = []
    for t, iid, state, track in events:
        out += g.apply(t, T0 + timedelta(seconds=t), [change(iid, state, t, track)])
    return out


def alerts(out: list[Reviewed]) -> list[Reviewed]:
    return [r for r in out if r.review == "alert"]


def test_default_is_one_alert_per_object() -> None:
    a, b = new_event_id(), new_event_id()
    out = run(gate(), [(0, a, IncidentState.START, 1), (1, b, IncidentState.START, 2), (5, a, IncidentState.END, 1)])
    assert [r.review for r in out] == ["alert"] * 3


def test_aggregate_makes_one_alert_per_zone_episode_with_counts_and_tracks() -> None:
    g = gate({"rules": {"person_in_zone": {"review": "aggregate"}}}, update_every_s=1.0)
    a, b, c = new_event_id(), new_event_id(), new_event_id()
    out = run(
        g,
        [
            (0, a, IncidentState.START, 1),
            (2, b, IncidentState.START, 2),
            (3, c, IncidentState.START, 3),
            (6, a, IncidentState.END, 1),
            (8, b, IncidentState.END, 2),
            (9, c, IncidentState.END, 3),
        ],
    )
    episode = alerts(out)
    assert len({r.change.incident_id for r in episode}) == 1, "one incident for the whole episode"
    assert (
        next(r.change.state for r in episode) is IncidentState.START and episode[-1].change.state is IncidentState.END
    )
    assert max(r.object_count or 0 for r in episode) == 3 and episode[-1].object_count == 3  # most at once
    assert episode[-1].track_ids == [1, 2, 3]
    members = [r for r in out if r.review == "detection"]
    assert {r.change.incident_id for r in members} == {a, b, c}  # every object still recorded
    assert all(str(episode[0].change.incident_id) in (r.review_reason or "") for r in members)
    # the zone empties: the next person opens a new episode (a new alert)
    d = new_event_id()
    later = run(g, [(30, d, IncidentState.START, 4)])
    assert len(alerts(later)) == 1 and alerts(later)[0].change.incident_id != episode[0].change.incident_id


def test_schedule_arms_a_zone_only_in_its_windows() -> None:
    night = {"schedule": [{"start": "22:00", "end": "06:00"}], "timezone": "Asia/Almaty"}  # UTC+5
    g = gate(night)
    noon_utc = run(g, [(0, new_event_id(), IncidentState.START, 1)])  # 17:00 in Almaty
    assert noon_utc[0].review == "detection" and noon_utc[0].review_reason == "zone not armed (schedule)"
    at_23_almaty = 6 * 3600.0  # 18:00 UTC
    armed = run(g, [(at_23_almaty, new_event_id(), IncidentState.START, 2)])
    assert armed[0].review == "alert"


@pytest.mark.parametrize(
    ("days", "local", "armed"),
    [
        (["fri"], datetime(2026, 3, 6, 23, 0), True),  # Friday 23:00
        (["fri"], datetime(2026, 3, 7, 5, 59), True),  # Saturday morning: Friday's window still runs
        (["fri"], datetime(2026, 3, 7, 6, 0), False),
        (["fri"], datetime(2026, 3, 6, 5, 0), False),  # Friday morning belongs to Thursday's window
    ],
)
def test_windows_past_midnight_belong_to_the_day_they_start(days: list[str], local: datetime, armed: bool) -> None:
    w = ArmWindow(days=days, start="22:00", end="06:00")  # type: ignore[arg-type]
    assert w.contains(local) is armed


def test_cooldown_demotes_alerts_that_follow_too_soon() -> None:
    g = gate({"rules": {"person_in_zone": {"cooldown_s": 60}}})
    out = run(
        g,
        [
            (0, new_event_id(), IncidentState.START, 1),
            (30, new_event_id(), IncidentState.START, 2),
            (61, new_event_id(), IncidentState.START, 3),
        ],
    )
    assert [r.review for r in out] == ["alert", "detection", "alert"]
    assert out[1].review_reason is not None and "cool-down" in out[1].review_reason


def test_detection_rule_is_recorded_never_a_card() -> None:
    out = run(
        gate({"rules": {"person_in_zone": {"review": "detection"}}}), [(0, new_event_id(), IncidentState.START, 1)]
    )
    assert out[0].review == "detection"


def test_budget_raises_one_flooding_alert_and_demotes_the_rest_until_the_rate_falls() -> None:
    g = gate(budget=3)
    out = run(g, [(float(i), new_event_id(), IncidentState.START, i) for i in range(8)])
    person = [r for r in out if r.change.type is IncidentType.PERSON_IN_ZONE]
    flood = [r for r in out if r.change.type is IncidentType.CAMERA_FLOODING]
    assert [r.review for r in person] == ["alert"] * 3 + ["detection"] * 5
    assert len(flood) == 1 and flood[0].change.state is IncidentState.START and flood[0].review == "alert"
    # a quiet minute later the flooding alert ends, and alerts flow again
    after = run(g, [(90.0, new_event_id(), IncidentState.START, 99)])
    ended = [r for r in after if r.change.type is IncidentType.CAMERA_FLOODING]
    assert ended and ended[0].change.state is IncidentState.END and ended[0].object_count == 4
    assert [r.review for r in after if r.change.type is IncidentType.PERSON_IN_ZONE] == ["alert"]


def test_alerting_config_errors_are_clear(tmp_path: Any) -> None:
    path = tmp_path / "k.yaml"
    path.write_text(
        "rules:\n  alerting:\n    timezone: Mars/Olympus\n    rules: {person_in_zon: {review: aggregate}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert "unknown time zone 'Mars/Olympus'" in str(exc.value)
    assert AlertPolicy().armed(T0)
