"""Prometheus metrics for workers (and helpers the indexer and console reuse), read at scrape time.

Why collectors instead of counters bumped in the data path: the worker already
counts everything (``CameraRunner.stats()``, ``BatchScheduler.stats()``, spool
and relay stats), so a :class:`WorkerCollector` turns those counters into
metric families when Prometheus scrapes, and the per-frame path pays nothing.
The two histograms that need one observation per event wrap what is already a
per-batch call: :class:`TimedDetector` (one observation per inference batch)
and :class:`TimedPublisher` (one per relay publish).

Cardinality: only two families carry a per-camera label — the camera's state
(one series per camera, the ``state`` label holding its current value) and its
last-frame age. Everything else is per worker or per model. A worker with N
cameras exports 2N + a constant number of series (about 2,100 for 1,000
cameras; see ``tests/unit/test_metrics.py``), so 20,000 cameras across a fleet
stay near 40,000 camera series in total.

Each process uses its own :class:`prometheus_client.CollectorRegistry`, never
the global default, so tests can run several in one interpreter.

Why one module over 400 lines: every metric a worker exports is declared here, once, with its help
text and labels, so the dashboard, the alert rules and the scrape test read one list.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from core.detections import Detections
from event_bus import topics
from event_bus.interfaces import DeliveryError, OutRecord, Publisher
from worker.analytics import AnalyticsCollector
from worker.clip_metrics import ClipCollector

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
PUBLISH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CAMERA_STATES = ("starting", "up", "degraded", "down", "pending")


def new_registry(process: bool = True) -> CollectorRegistry:
    """A registry for one process, with the standard process / platform / GC collectors."""
    registry = CollectorRegistry(auto_describe=True)
    if process:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry


def series_count(registry: CollectorRegistry, prefix: str = "") -> int:
    """How many time series a scrape of ``registry`` returns (optionally only names starting with ``prefix``)."""
    return sum(1 for family in registry.collect() for sample in family.samples if sample.name.startswith(prefix))


# -- per-batch instruments -------------------------------------------------------------------------------------------


class _DetectorLike(Protocol):
    name: str
    version: str

    def detect(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]: ...


class TimedDetector:
    """Wraps a detector: one histogram observation per inference call (per batch, not per frame)."""

    def __init__(self, inner: _DetectorLike, histogram: Histogram) -> None:
        self._inner = inner
        self._hist = histogram.labels(model=inner.name)
        self.name = inner.name
        self.version = inner.version

    def detect(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        started = time.perf_counter()
        try:
            return self._inner.detect(images)
        finally:
            self._hist.observe(time.perf_counter() - started)

    def __getattr__(self, item: str) -> Any:  # anything else a backend exposes (input size, session, ...)
        return getattr(self._inner, item)


class TimedPublisher:
    """Wraps the relay's publisher: publish latency per call and records by outcome."""

    def __init__(self, inner: Publisher, histogram: Histogram, outcomes: Counter[str]) -> None:
        self._inner = inner
        self._hist = histogram
        self._outcomes = outcomes

    def publish(self, records: Sequence[OutRecord]) -> list[DeliveryError | None]:
        started = time.perf_counter()
        results = self._inner.publish(records)
        self._hist.observe(time.perf_counter() - started)
        failed = sum(1 for r in results if r is not None)
        self._outcomes["failed"] += failed
        self._outcomes["acked"] += len(results) - failed
        return results

    def close(self) -> None:
        self._inner.close()


# -- consumer lag -----------------------------------------------------------------------------------------------------


class ConsumerLagTracker:
    """Consumer lag per (group, topic), updated by the consumer's own thread, exported at scrape time.

    kafka-python consumers are not thread-safe, so the owner calls
    :meth:`update` from its poll loop (it uses the high-water marks the fetcher
    already has: no extra request), and the collector only reads the numbers.
    """

    def __init__(self) -> None:
        self._lag: dict[tuple[str, str], int] = {}

    def set(self, group: str, topic: str, lag: int) -> None:
        self._lag[(group, topic)] = max(0, int(lag))

    def update(self, consumer: Any, group: str) -> None:
        per_topic: Counter[str] = Counter()
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            try:
                pos = consumer.position(tp, timeout_ms=0)
            except Exception:  # noqa: S112  # no position yet: count nothing rather than block
                continue
            if pos is not None:
                per_topic[tp.topic] += max(0, high - pos)
        for topic, lag in per_topic.items():
            self.set(group, topic, lag)

    def snapshot(self) -> dict[tuple[str, str], int]:
        return dict(self._lag)


class LagCollector(Collector):
    def __init__(self, tracker: ConsumerLagTracker) -> None:
        self.tracker = tracker

    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "kuzet_kafka_consumer_lag",
            "Records behind the partitions' ends, per consumer group and topic",
            labels=["group", "topic"],
        )
        for (group, topic), value in sorted(self.tracker.snapshot().items()):
            lag.add_metric([group, topic], value)
        yield lag


# -- the worker collector ---------------------------------------------------------------------------------------------


class _WorkerStats(Protocol):
    worker_id: str

    def camera_ids(self) -> list[str]: ...

    def camera_stats(self) -> dict[str, Any]: ...

    def scheduler_stats(self) -> dict[str, Any]: ...

    def camera_health(self) -> dict[str, Any]: ...

    def models_loaded(self) -> list[str]: ...


class _AssignmentStats(Protocol):
    def stats(self) -> Any: ...

    def pending(self) -> list[str]: ...


class _Scalar(NamedTuple):
    """One unlabelled family read from a stats object: ``{prefix}_{field}`` unless ``name`` says otherwise."""

    kind: type[GaugeMetricFamily] | type[CounterMetricFamily]
    field: str
    help: str
    name: str = ""


_G, _C = GaugeMetricFamily, CounterMetricFamily
_SPOOL_FAMILIES = (
    _Scalar(_G, "depth", "Records in the durable outbox waiting for the broker"),
    _Scalar(_G, "bytes", "Bytes in the durable outbox (events and snapshots)"),
    _Scalar(_C, "appended", "Records written to the outbox"),
    _Scalar(_C, "rejected_full", "Appends refused because the outbox was full"),
    _Scalar(_G, "parked", "Records set aside because the broker refuses them for good (see the spool)"),
    _Scalar(_G, "quarantined", "1 when the outbox file was found damaged at start and moved aside"),
    _Scalar(_G, "salvaged", "Records carried over from a damaged outbox file"),
)
_RELAY_FAMILIES = (
    _Scalar(_C, "delivered", "Records the broker acknowledged"),
    _Scalar(_C, "publish_failures", "Publish attempts that failed"),
    _Scalar(_C, "before_publish_failures", "Snapshot uploads that failed", "snapshot_upload_failures"),
    _Scalar(_G, "consecutive_failures", "Failed relay attempts in a row (0 when the bus is healthy)"),
    _Scalar(_C, "parked", "Records this process parked (unpublishable)"),
)


def _scalar_families(prefix: str, stats: Any, families: Sequence[_Scalar]) -> Iterator[Metric]:
    """One family per entry, its value the stats field (0 where the stats object lacks it)."""
    for f in families:
        family = f.kind(f"{prefix}_{f.name or f.field}", f.help)
        family.add_metric([], _get(stats, f.field))
        yield family


def _get(obj: Any, name: str, default: float = 0.0) -> float:
    value = getattr(obj, name, default)
    return float(value) if value is not None else default


class _OutboxStats(Protocol):
    def refused(self) -> Mapping[str, int]: ...

    def dropped(self) -> Mapping[str, int]: ...

    def waiting(self) -> int: ...


class WorkerCollector(Collector):
    """Turns the worker's own counters into metric families when scraped (nothing on the frame path)."""

    def __init__(
        self,
        worker: _WorkerStats,
        *,
        assignment: _AssignmentStats | None = None,
        spool_stats: Callable[[], Any] | None = None,
        relay_stats: Callable[[], Any] | None = None,
        outbox: _OutboxStats | None = None,
        publish_outcomes: Mapping[str, int] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.worker = worker
        self.assignment = assignment
        self.spool_stats = spool_stats
        self.relay_stats = relay_stats
        self.outbox = outbox
        self.publish_outcomes = publish_outcomes
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        yield from self._cameras()
        yield from self._schedulers()
        yield from self._stages()
        yield from self._outbox()
        yield from self._assignment()

    def _cameras(self) -> Iterable[Metric]:
        stats = self.worker.camera_stats()
        health = self.worker.camera_health()
        pending = self.assignment.pending() if self.assignment is not None else []
        now = self.clock()
        received = CounterMetricFamily(
            "kuzet_frames_received", "Video packets (frames) read from the streams of this worker's cameras"
        )
        decoded = CounterMetricFamily("kuzet_frames_decoded", "Frames decoded (key-frame-only mode decodes few)")
        sampled = CounterMetricFamily("kuzet_frames_sampled", "Decoded frames handed to detection at the analysis rate")
        reconnects = CounterMetricFamily("kuzet_camera_reconnects", "Stream reconnections, all cameras")
        decode_errors = CounterMetricFamily("kuzet_decode_errors", "Packets that could not be decoded")
        decode_cpu = CounterMetricFamily("kuzet_decode_cpu_seconds", "Thread CPU time spent decoding")
        totals: Counter[str] = Counter()
        cpu_s = 0.0
        for s in stats.values():
            totals["received"] += int(_get(s, "packets_read"))
            totals["decoded"] += int(_get(s, "frames_decoded"))
            totals["sampled"] += int(_get(s, "frames_analysed"))
            totals["reconnects"] += int(_get(s, "reconnects"))
            totals["errors"] += int(_get(s, "decode_errors"))
            cpu_s += _get(s, "decode_cpu_s")
        received.add_metric([], totals["received"])
        decoded.add_metric([], totals["decoded"])
        sampled.add_metric([], totals["sampled"])
        reconnects.add_metric([], totals["reconnects"])
        decode_errors.add_metric([], totals["errors"])
        decode_cpu.add_metric([], cpu_s)
        yield from (received, decoded, sampled, reconnects, decode_errors, decode_cpu)

        by_state = GaugeMetricFamily("kuzet_cameras", "Cameras of this worker by state", labels=["state"])
        state = GaugeMetricFamily(
            "kuzet_camera_state",
            "1 per camera, labelled with its current state (one series per camera)",
            labels=["camera", "state"],
        )
        age = GaugeMetricFamily(
            "kuzet_camera_last_frame_age_seconds",
            "Seconds since the camera's last analysed frame",
            labels=["camera"],
        )
        counts: Counter[str] = Counter(dict.fromkeys(CAMERA_STATES, 0))
        for cid in sorted(health):
            h = health[cid]
            st = str(getattr(h, "state", "starting"))
            counts[st] += 1
            state.add_metric([cid, st], 1)
            last = getattr(h, "last_analysed_at", None)
            if last is not None:
                age.add_metric([cid], max(0.0, now - float(last)))
        for cid in pending:
            counts["pending"] += 1
            state.add_metric([cid, "pending"], 1)
        for st_name in sorted(counts):
            by_state.add_metric([st_name], counts[st_name])
        yield from (by_state, state, age)

    def _schedulers(self) -> Iterable[Metric]:
        analysed = CounterMetricFamily("kuzet_frames_analysed", "Frames through inference", labels=["model"])
        dropped = CounterMetricFamily(
            "kuzet_frames_dropped", "Frames dropped before inference (overload: newest frame wins)", labels=["model"]
        )
        failed = CounterMetricFamily("kuzet_frames_failed", "Frames whose inference raised", labels=["model"])
        inputs = CounterMetricFamily(
            "kuzet_model_inputs",
            "Images sent to the model: frames plus tiles (over kuzet_frames_analysed: inferences per frame)",
            labels=["model"],
        )
        queue = GaugeMetricFamily("kuzet_batch_queue_depth", "Frames waiting for or in inference", labels=["model"])
        batches = HistogramMetricFamily("kuzet_batch_size", "Frames per inference batch", labels=["model"])
        loaded = GaugeMetricFamily("kuzet_models_loaded", "Models loaded by this worker")
        for model, s in sorted(self.worker.scheduler_stats().items()):
            n_an, n_drop, n_fail = _get(s, "analysed"), _get(s, "dropped"), _get(s, "failed")
            analysed.add_metric([model], n_an)
            dropped.add_metric([model], n_drop)
            failed.add_metric([model], n_fail)
            inputs.add_metric([model], _get(s, "model_inputs"))
            queue.add_metric([model], max(0.0, _get(s, "submitted") - n_an - n_drop - n_fail))
            sizes: Mapping[int, int] = getattr(s, "batch_sizes", {}) or {}
            buckets: list[tuple[str, float]] = []
            for bound in BATCH_BUCKETS:
                buckets.append((str(float(bound)), float(sum(c for size, c in sizes.items() if size <= bound))))
            buckets.append(("+Inf", float(sum(sizes.values()))))
            batches.add_metric([model], buckets, sum_value=float(sum(size * c for size, c in sizes.items())))
        loaded.add_metric([], len(self.worker.models_loaded()))
        yield from (analysed, dropped, failed, inputs, queue, batches, loaded)

    def _stages(self) -> Iterable[Metric]:
        """The stages after inference (worker/pipeline.py): drops per stage and camera, queue depths."""
        pipeline_stats = getattr(self.worker, "pipeline_stats", None)
        dropped = CounterMetricFamily(
            "kuzet_stage_dropped",
            "Items dropped by a full stage queue (batcher: newest frame wins; plate: oldest frame), per camera",
            labels=["stage", "camera"],
        )
        depth = GaugeMetricFamily("kuzet_stage_queue_depth", "Items waiting in a stage's queue", labels=["stage"])
        # Only this worker's cameras: the counts of a camera that moved to another worker stay in the stages'
        # stats, but exporting them would leave one series per camera that ever passed through (up to the
        # whole fleet after rebalances); its new worker counts its drops from then on.
        mine = set(self.worker.camera_ids())
        for model, s in sorted(self.worker.scheduler_stats().items()):
            for cid, n in sorted((getattr(s, "dropped_by_camera", None) or {}).items()):
                if cid in mine:
                    dropped.add_metric([f"inference:{model}", cid], n)
        if pipeline_stats is not None:
            for name, q in sorted(pipeline_stats().queues.items()):
                depth.add_metric([name], q.depth)
                for cid, n in sorted(q.dropped_by_camera.items()):
                    if cid in mine:
                        dropped.add_metric([name, cid], n)
        yield from (dropped, depth)

    def _outbox(self) -> Iterable[Metric]:
        if self.spool_stats is not None:
            yield from _scalar_families("kuzet_spool", self.spool_stats(), _SPOOL_FAMILIES)
        if self.relay_stats is not None:
            yield from _scalar_families("kuzet_relay", self.relay_stats(), _RELAY_FAMILIES)
        if self.outbox is not None:
            zero = dict.fromkeys((topics.INCIDENTS, topics.PLATES, topics.CAMERA_STATUS), 0)
            refused = CounterMetricFamily(
                "kuzet_outbox_refused", "Appends the outbox refused (disk full, spool full)", labels=["topic"]
            )
            for topic, count in sorted((zero | dict(self.outbox.refused())).items()):
                refused.add_metric([topic], float(count))
            dropped = CounterMetricFamily(
                "kuzet_outbox_dropped", "Events dropped because the in-memory backlog was full", labels=["topic"]
            )
            for topic, count in sorted((zero | dict(self.outbox.dropped())).items()):
                dropped.add_metric([topic], float(count))
            waiting = GaugeMetricFamily("kuzet_outbox_waiting", "Events waiting in memory for the outbox to take them")
            waiting.add_metric([], float(self.outbox.waiting()))
            yield from (refused, dropped, waiting)
        if self.publish_outcomes is not None:
            outcome = CounterMetricFamily("kuzet_publish_records", "Records published, by outcome", labels=["outcome"])
            for name in ("acked", "failed"):
                outcome.add_metric([name], float(self.publish_outcomes.get(name, 0)))
            yield outcome

    def _assignment(self) -> Iterable[Metric]:
        info = GaugeMetricFamily("kuzet_worker_info", "Constant 1, labelled with the worker id", labels=["worker"])
        info.add_metric([self.worker.worker_id], 1)
        yield info
        if self.assignment is None:
            return
        a = self.assignment.stats()
        gauges = {
            "kuzet_worker_capacity": ("Cameras this worker declared it can hold", a.capacity),
            "kuzet_worker_cameras_running": ("Cameras running on this worker", a.cameras_running),
            "kuzet_worker_cameras_pending": (
                "Cameras assigned to this worker not started because it is full (unassigned-capacity)",
                a.cameras_pending,
            ),
            "kuzet_worker_full": (
                "1 when the worker runs as many cameras as its capacity",
                int(a.cameras_running >= a.capacity),
            ),
            "kuzet_worker_cameras_assigned": ("Cameras the group leader assigned to this worker", a.cameras_assigned),
            "kuzet_group_generation": (
                "Generation of this worker's current assignment (-1: none)",
                a.generation if a.generation is not None else -1,
            ),
            "kuzet_registry_loaded": ("1 once this worker has read the whole registry", int(a.registry_loaded)),
            "kuzet_group_member": ("1 while this worker is a member of the camera group", int(a.member_of_group)),
            "kuzet_assignment_poll_age_seconds": ("Seconds since the group consumer last polled", a.last_poll_age_s),
            "kuzet_registry_dead_letter_member_ok": (
                "1 while this worker's member of the registry dead-lettering group works (0: retrying after an error)",
                int(a.dead_letter_member_ok),
            ),
        }
        for name, (doc, value) in gauges.items():
            g = GaugeMetricFamily(name, doc)
            g.add_metric([], float(value))
            yield g
        registered = GaugeMetricFamily(
            "kuzet_registry_cameras", "Cameras in the whole registry (this worker's view)", labels=["enabled"]
        )
        registered.add_metric(["true"], a.registry_cameras_enabled)
        registered.add_metric(["false"], a.registry_cameras_disabled)
        yield registered
        counters = {
            "kuzet_registry_invalid_records": (
                "Invalid camera records skipped (dead-lettered once)",
                a.invalid_records,
            ),
            "kuzet_registry_dead_letters": (
                "Invalid registry records this worker dead-lettered (each record once per worker group)",
                a.dead_letters_written,
            ),
            "kuzet_camera_start_failures": ("Cameras that failed to start or update", a.start_failures),
            "kuzet_rebalances": ("Camera assignments this worker received", a.rebalances),
            "kuzet_worker_fenced": (
                "Times this worker stopped its cameras because its membership may have lapsed",
                a.fenced,
            ),
        }
        for name, (doc, value) in counters.items():
            c = CounterMetricFamily(name, doc)
            c.add_metric([], float(value))
            yield c
        lag = GaugeMetricFamily(
            "kuzet_kafka_consumer_lag",
            "Records behind the partitions' ends, per consumer group and topic",
            labels=["group", "topic"],
        )
        lag.add_metric([a.group, "kuzet.cameras.v1"], float(a.registry_lag))
        yield lag


class WorkerMetrics:
    """Everything a worker process exports: the registry, the per-batch instruments and the scrape-time collector."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or new_registry()
        self.inference = Histogram(
            "kuzet_inference_seconds",
            "Wall time of one inference call (one batch)",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.publish = Histogram(
            "kuzet_publish_seconds",
            "Wall time of one publish of a batch of spooled records to the bus",
            buckets=PUBLISH_BUCKETS,
            registry=self.registry,
        )
        self.publish_outcomes: Counter[str] = Counter()
        self.collector: WorkerCollector | None = None

    def detector_hook(self, _model_name: str, detector: Any) -> Any:
        """For ``Worker(detector_hook=...)``: time every inference batch."""
        return TimedDetector(detector, self.inference)

    def wrap_publisher(self, publisher: Publisher) -> Publisher:
        return TimedPublisher(publisher, self.publish, self.publish_outcomes)

    def bind(self, worker: Any, assignment: _AssignmentStats | None = None) -> WorkerCollector:
        """Register the scrape-time collector for ``worker`` (a :class:`worker.runtime.Worker`)."""
        self.collector = WorkerCollector(
            worker,
            assignment=assignment,
            spool_stats=worker.spool.stats,
            relay_stats=worker.relay.stats,
            outbox=worker.outbox,
            publish_outcomes=self.publish_outcomes,
        )
        self.registry.register(self.collector)
        if getattr(worker, "clips", None) is not None:
            self.registry.register(ClipCollector(worker.clips))
        self.registry.register(AnalyticsCollector(worker.analytics))
        return self.collector
