"""The spans the city-scale benchmark and the camera-group test read double ownership from."""

from __future__ import annotations

from benchmarks.status_follow import Span, worker_spans


def test_spans_split_where_the_worker_changes_and_follow_time_not_arrival() -> None:
    statuses = [("cam-1", "w2", 5.0), ("cam-1", "w1", 1.0), ("cam-1", "w1", 2.0), ("cam-2", "w1", 3.0),
                ("cam-1", "w1", 7.0), ("cam-1", "w2", 4.0)]  # fmt: skip
    spans = worker_spans(statuses)
    assert spans["cam-1"] == [Span("w1", 1.0, 2.0), Span("w2", 4.0, 5.0), Span("w1", 7.0, 7.0)]
    assert spans["cam-2"] == [Span("w1", 3.0, 3.0)]
    assert worker_spans([]) == {}
