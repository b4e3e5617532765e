"""Prometheus families for evidence clips: ring-buffer memory, clip outcomes and their CPU, read at scrape time.

Per worker, not per camera (cardinality): the sum and the largest ring say
whether the memory bound holds; evictions say when it cut a pre-roll short.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from worker.clips import ClipRecorder


class ClipCollector(Collector):
    """Reads :class:`ClipRecorder`'s counters and every camera's ring when Prometheus scrapes."""

    def __init__(self, recorder: ClipRecorder) -> None:
        self.recorder = recorder

    def collect(self) -> Iterator[Metric]:
        rings = self.recorder.ring_stats().values()
        total = GaugeMetricFamily("kuzet_clip_ring_bytes", "Bytes held in the pre-roll ring buffers of all cameras")
        total.add_metric([], sum(r.bytes for r in rings))
        largest = GaugeMetricFamily("kuzet_clip_ring_bytes_max", "Bytes held by the largest camera ring buffer")
        largest.add_metric([], max((r.bytes for r in rings), default=0))
        span = GaugeMetricFamily("kuzet_clip_ring_span_min_seconds", "Shortest pre-roll span any camera ring holds")
        span.add_metric([], min((r.span_s for r in rings), default=0.0))
        evicted = CounterMetricFamily(
            "kuzet_clip_ring_evictions", "GOPs dropped from a ring to keep its memory bound (pre-roll cut short)"
        )
        evicted.add_metric([], sum(r.evicted_for_memory for r in rings))
        stats = self.recorder.stats
        clips = CounterMetricFamily("kuzet_clips", "Clips spooled or given up, by outcome", labels=["outcome"])
        for outcome, n in (("complete", stats.complete), ("incomplete", stats.incomplete), ("failed", stats.failed)):
            clips.add_metric([outcome], n)
        tap = CounterMetricFamily("kuzet_clip_tap_cpu_seconds", "Camera-thread CPU copying packets for clips")
        tap.add_metric([], self.recorder.tap_cpu_s())
        fin = CounterMetricFamily("kuzet_clip_finalize_cpu_seconds", "CPU remuxing finished clips and hashing them")
        fin.add_metric([], stats.finalize_cpu_s)
        yield from (total, largest, span, evicted, clips, tap, fin)
