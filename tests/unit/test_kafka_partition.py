"""The registry must put a camera on the partition Kafka's Java client would: murmur2, checked against Java's own
values (``org.apache.kafka.common.utils.Utils.murmur2`` as asserted in Kafka's ``UtilsTest``, and the
partitions Kafka's default partitioner picks among 1000), not only for stability."""

from __future__ import annotations

import pytest

from event_bus.kafka_admin import partition_for_key
from worker.registry import REGISTRY_PARTITIONS, partition_for

# Utils.murmur2(bytes) in Java (signed 32-bit int), from Kafka's UtilsTest.testMurmur2.
JAVA_MURMUR2 = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]

# Partition the Java producer's default partitioner chooses for these keys among 1000 partitions.
JAVA_PARTITION_OF_1000 = [(b"", 681), (b"a", 524), (b"ab", 434), (b"abc", 107), (b"123456789", 566), (b"\x00 ", 742)]


@pytest.mark.parametrize(("key", "java_hash"), JAVA_MURMUR2)
def test_hash_matches_java_utils_murmur2(key: bytes, java_hash: int) -> None:
    # Java's toPositive(murmur2(key)) % n; with n = 2**31 the modulo keeps every one of the 31 bits.
    assert partition_for_key(key, 2**31) == java_hash & 0x7FFFFFFF


@pytest.mark.parametrize(("key", "partition"), JAVA_PARTITION_OF_1000)
def test_partition_matches_the_java_default_partitioner(key: bytes, partition: int) -> None:
    assert partition_for_key(key, 1000) == partition


def test_camera_partition_is_the_keyed_partition_of_its_id() -> None:
    for cid in ("cam-1", "nord-007", "Перекрёсток-3"):
        assert partition_for(cid) == partition_for_key(cid.encode("utf-8"), REGISTRY_PARTITIONS)
