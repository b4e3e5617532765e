"""Analysis-rate sampling by stream time, and the key-frame-only decision."""

from __future__ import annotations

import itertools

import pytest

from ingest.sampler import KeyframePolicy, RateSampler


def _taken(sampler: RateSampler, pts: list[float]) -> list[float]:
    return [p for p in pts if sampler.take(p)]


@pytest.mark.parametrize(("stream_fps", "analysis_fps"), [(25, 5), (25, 1), (10, 3), (30, 7.5), (10, 10), (12.5, 2)])
def test_rate_is_kept_in_stream_time(stream_fps: float, analysis_fps: float) -> None:
    seconds = 60
    pts = [i / stream_fps for i in range(int(seconds * stream_fps))]
    taken = _taken(RateSampler(analysis_fps), pts)
    assert abs(len(taken) - seconds * analysis_fps) <= 1
    gaps = [b - a for a, b in itertools.pairwise(taken)]
    # on a frame grid the schedule is met by the first frame at or after each due time:
    # two analysed frames are never closer than one interval minus one frame period
    assert min(gaps) >= 1 / analysis_fps - 1 / stream_fps - 1e-9


def test_takes_the_frame_on_schedule_not_one_early() -> None:
    pts = [i / 10 for i in range(31)]
    assert _taken(RateSampler(1.0), pts) == [0.0, 1.0, 2.0, 3.0]


def test_jittered_timestamps_do_not_halve_the_rate() -> None:
    # key frames nominally 1 s apart, arriving a few ms early or late
    pts = [i * 1.0 + (0.004 if i % 2 else -0.004) for i in range(1, 61)]
    assert len(_taken(RateSampler(1.0), pts)) == 60


def test_a_timestamp_jump_reanchors_instead_of_bursting_or_starving() -> None:
    sampler = RateSampler(2.0)
    before = _taken(sampler, [i / 10 for i in range(20)])
    # stream restarts at 0 (reconnect / loop without offset): must not wait 2 s for the schedule
    after_reset = _taken(sampler, [i / 10 for i in range(20)])
    assert len(before) == 4 and len(after_reset) == 4
    # forward jump of an hour: one frame, then the normal rate, not thousands of "owed" frames
    jumped = _taken(sampler, [3600 + i / 10 for i in range(20)])
    assert len(jumped) == 4


def test_rate_independent_of_delivery_speed() -> None:
    """The sampler sees only pts: the same pts sequence gives the same frames however fast it is fed."""
    pts = [i / 25 for i in range(250)]
    assert _taken(RateSampler(5), pts) == _taken(RateSampler(5), list(pts))


def test_policy_auto_switches_to_keyframes_once_gop_is_known() -> None:
    policy = KeyframePolicy("auto", analysis_fps=1.0)
    assert not policy.keyframe_only()
    policy.observe(True, 0.0)
    policy.observe(False, 0.04)
    policy.observe(True, 1.0)
    assert not policy.keyframe_only(), "one interval is not enough evidence"
    policy.observe(True, 2.0)
    assert policy.keyframe_only()
    assert policy.keyframe_interval_s == pytest.approx(1.0)


def test_policy_auto_keeps_full_decoding_when_keyframes_are_too_rare() -> None:
    policy = KeyframePolicy("auto", analysis_fps=5.0)
    for i in range(5):
        policy.observe(True, float(i))
    assert not policy.keyframe_only()


def test_policy_auto_falls_back_when_gop_grows() -> None:
    policy = KeyframePolicy("auto", analysis_fps=0.5, history=3)
    for t in (0.0, 1.0, 2.0, 3.0):
        policy.observe(True, t)
    assert policy.keyframe_only()
    policy.observe(True, 8.0)  # the camera now sends a key frame every 5 s
    assert not policy.keyframe_only()


def test_policy_forced_modes_and_reset() -> None:
    always = KeyframePolicy("always", analysis_fps=25.0)
    never = KeyframePolicy("never", analysis_fps=0.1)
    for t in range(4):
        always.observe(True, float(t))
        never.observe(True, float(t))
    assert always.keyframe_only()
    assert not never.keyframe_only()
    auto = KeyframePolicy("auto", analysis_fps=1.0)
    for t in range(4):
        auto.observe(True, float(t))
    auto.reset()
    assert not auto.keyframe_only() and auto.keyframe_interval_s is None


def test_policy_ignores_jumps_when_estimating() -> None:
    policy = KeyframePolicy("auto", analysis_fps=1.0)
    for t in (0.0, 1.0, 2.0, 500.0, 501.0):
        policy.observe(True, t)
    assert policy.keyframe_interval_s == pytest.approx(1.0)
