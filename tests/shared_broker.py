"""Keeping the session's shared Kafka broker fit for the tests that follow a bulk test."""

from __future__ import annotations

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient


def delete_records(bootstrap: str, topic: str) -> None:
    """Delete every record now on ``topic`` (a delete-policy topic) from the shared broker.

    Later tests read topics such as the plate reads and camera statuses from their oldest record; thousands
    of records a bulk test left behind sit in front of theirs while they catch up (found in the full suite:
    the indexer tests after the two-indexer test, and the browser tests after the 20,000-status board test,
    timed out behind the backlog).
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        admin.delete_records(consumer.end_offsets(parts))
    finally:
        consumer.close()
        admin.close()
