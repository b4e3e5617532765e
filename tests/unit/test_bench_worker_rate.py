"""The pipeline benchmark's rate and median: pure arithmetic on step times, no worker."""

from __future__ import annotations

import pytest

from benchmarks.pipeline import median_run, step_rate


def test_rate_is_taken_between_step_ends_not_over_a_window_that_cuts_a_batch() -> None:
    # 16 frames every 4 s (16 cameras at batch 16, 4 fps), first batch end 1 s into a 20 s window:
    # five batch ends (1, 5, 9, 13, 17 s); a count over the window would give 80 / 20 = 4.0 or 64 / 20 = 3.2
    steps = [(1.0 + 4.0 * i, 16 * (i + 1)) for i in range(5)]
    assert step_rate(steps) == pytest.approx(4.0)


def test_rate_needs_three_steps() -> None:
    assert step_rate([(0.0, 0), (4.0, 16)]) == 0.0


def test_median_run_is_the_middle_one_and_keeps_every_ratio() -> None:
    runs = [{"ratio_to_limit": r, "fps": 4 * r} for r in (1.1, 0.85, 0.97)]
    median = median_run(runs)
    assert median["fps"] == pytest.approx(3.88)
    assert median["ratios_of_runs"] == [1.1, 0.85, 0.97]


def test_median_of_an_even_count_is_the_lower_middle() -> None:
    assert median_run([{"ratio_to_limit": r} for r in (1.0, 0.9)])["ratio_to_limit"] == 0.9
