"""Prometheus metrics and probes for the processes that are not workers: the plate indexer and the console.

Each gets the same ``/metrics``, ``/healthz`` and ``/readyz`` server as a worker
(:class:`worker.http.HealthServer`) on a port of its own, with a collector that
reads the process's existing counters at scrape time, so nothing is added to
the indexing or feed paths. Wired here, at the top of the import graph, so that
``storage`` and ``dispatch`` stay free of the metrics stack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dispatch.readiness import check_bus, check_database
from event_bus.interfaces import Subscriber
from event_bus.kafka_subscriber import KafkaSubscriber
from worker.http import HealthServer
from worker.metrics import ConsumerLagTracker, LagCollector, new_registry


class IndexerCollector(Collector):
    """The plate indexer's counters (``services.plate_indexer.IndexerStats``)."""

    def __init__(self, stats: Any) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        records = CounterMetricFamily("kuzet_indexer_records", "Plate-read records by outcome", labels=["outcome"])
        for outcome in ("received", "stored", "duplicates", "dead_lettered"):
            records.add_metric([outcome], float(getattr(self.stats, outcome)))
        yield records
        yield CounterMetricFamily("kuzet_indexer_batches", "Batches stored and committed", value=self.stats.batches)
        yield CounterMetricFamily(
            "kuzet_indexer_failures", "Store or DLQ failures (batch re-read)", value=self.stats.failures
        )


class ConsoleCollector(Collector):
    """The console's feed: open SSE connections, messages fanned out, slow browsers cut off, bus intake."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        hub = self.ctx.hub
        yield GaugeMetricFamily("kuzet_console_sse_connections", "Open live-feed connections", value=hub.connections)
        yield CounterMetricFamily("kuzet_console_feed_messages", "Feed messages fanned out", value=hub.published)
        yield CounterMetricFamily(
            "kuzet_console_feed_overflows", "Connections that fell behind and were told to reload", value=hub.overflows
        )
        ingestor = self.ctx.ingestor
        yield CounterMetricFamily(
            "kuzet_console_events_ingested", "Events read from the bus", value=ingestor.ingested if ingestor else 0
        )
        yield CounterMetricFamily(
            "kuzet_console_ingest_errors", "Bus read or store errors", value=ingestor.errors if ingestor else 0
        )
        yield from self._line_counts()

    def _line_counts(self) -> Iterator[Metric]:
        """The camera board's line-count reader (dispatch.line_count_ingest): not part of readiness, since a
        replica without line counts still serves incidents; its errors and dead letters show here."""
        reader = self.ctx.extra.get("line_counts")
        consumer = reader.consumer if reader is not None else None
        yield CounterMetricFamily(
            "kuzet_console_line_counts_read", "Line-count events applied", value=reader.ingested if reader else 0
        )
        yield CounterMetricFamily(
            "kuzet_console_line_count_errors", "Line-count reader failures", value=reader.errors if reader else 0
        )
        yield CounterMetricFamily(
            "kuzet_console_line_counts_dead_lettered",
            "Malformed line-count records sent to the DLQ (by the reader's current subscriber)",
            value=consumer.stats.dead_lettered if consumer is not None else 0,
        )
        counts = self.ctx.board.line_counts
        yield GaugeMetricFamily(
            "kuzet_console_line_count_cameras",
            "Cameras with line counts kept",
            value=len(counts) if counts is not None else 0,
        )


def indexer_server(stats: Any, group: str, host: str, port: int) -> tuple[HealthServer, Callable[[Subscriber], None]]:
    """A started metrics server for an indexer, and the ``on_step`` hook that keeps its consumer lag current."""
    lag = ConsumerLagTracker()
    registry = new_registry()
    registry.register(IndexerCollector(stats))
    registry.register(LagCollector(lag))

    def on_step(sub: Subscriber) -> None:
        if isinstance(sub, KafkaSubscriber):
            lag.update(sub.kafka_consumer, group)

    def storing() -> tuple[bool, str]:
        # ready while nothing has failed, or once a batch was stored after a failure
        return stats.failures == 0 or stats.batches > 0, stats.last_error or "storing"

    return HealthServer(registry, host=host, port=port, checks={"store": storing}).start(), on_step


def console_server(ctx: Any, host: str, port: int) -> HealthServer:
    """A started metrics server for a console app context (``app.state.console``)."""
    registry = new_registry()
    registry.register(ConsoleCollector(ctx))

    checks = {"database": lambda: check_database(ctx), "bus": lambda: check_bus(ctx)}
    return HealthServer(registry, host=host, port=port, checks=checks).start()
