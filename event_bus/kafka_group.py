"""Kafka consumer groups for weighted, cooperative partition ownership, and following a topic to its end.

The worker's camera assignment (:mod:`worker.assignment`) rests on Kafka's
own group coordination; the Kafka side of it lives here, so that nothing
outside ``event_bus`` imports ``kafka``:

* :func:`plan_assignment` and :func:`cooperative_round`: the plan (pure,
  unit-tested): partitions per member, balancing partition weights relative to
  capacity, sticky to current owners, never handing a partition to a new owner
  while the old one still holds it (KIP-429);
* :class:`WeightedAssignor`: that plan as a kafka-python assignor (protocol
  name ``kuzet-camera-balanced``, kept for running groups);
* :class:`GroupConsumer`: a member of such a group on one topic, with
  assignment callbacks, positions and end offsets;
* :func:`follow_topic`: every partition of a topic read from its beginning,
  with no group, telling when it has caught up.

Records come out as :class:`~event_bus.kafka_admin.RawRecord` (tombstones
keep their ``None`` value).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.coordinator.assignors.abstract import AbstractPartitionAssignor, RebalanceProtocol
from kafka.protocol.consumer.metadata import ConsumerProtocolAssignment, ConsumerProtocolSubscription

from event_bus.kafka_admin import RawRecord
from event_bus.kafka_security import env_settings

log = logging.getLogger(__name__)


# -- the assignment plan (pure, unit-tested) ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """What a member tells the leader when it joins: its capacity and the partitions it owns now."""

    capacity: int
    owned: frozenset[int] = frozenset()
    worker_id: str = ""


def plan_assignment(
    partitions: Sequence[int], members: Mapping[str, MemberInfo], weights: Mapping[int, int]
) -> dict[str, list[int]]:
    """Partitions per member, balancing cameras (``weights``) relative to capacity, sticky to current owners.

    1. Every partition keeps its current owner if that owner is still a member
       (first claimant wins a double claim).
    2. Unowned partitions go, heaviest first, to the member with the lowest
       load / capacity (empty partitions to the member with fewest partitions,
       so future cameras spread too).
    3. While moving one partition from the most to the least loaded member
       lowers the larger of their two loads, move the best such partition.
    """
    if not members:
        return {}
    ids = sorted(members)
    cap = {m: max(1, members[m].capacity) for m in ids}
    owner: dict[int, str] = {}
    for m in ids:
        for p in sorted(members[m].owned):
            if p in partitions and p not in owner:
                owner[p] = m
    load = dict.fromkeys(ids, 0)
    count = dict.fromkeys(ids, 0)
    for p, m in owner.items():
        load[m] += weights.get(p, 0)
        count[m] += 1
    unowned = sorted((p for p in partitions if p not in owner), key=lambda p: (-weights.get(p, 0), p))
    for p in unowned:
        w = weights.get(p, 0)
        m = (
            min(ids, key=lambda x: ((load[x] + w) / cap[x], count[x], x))
            if w
            else min(ids, key=lambda x: (count[x] / cap[x], x))
        )
        owner[p] = m
        load[m] += w
        count[m] += 1
    for _ in range(4 * len(partitions) + 16):
        hi = max(ids, key=lambda x: (load[x] / cap[x], x))
        lo = min(ids, key=lambda x: (load[x] / cap[x], x))
        if hi == lo:
            break
        worst = load[hi] / cap[hi]
        best: tuple[float, int] | None = None
        for p, m in owner.items():
            w = weights.get(p, 0)
            if m != hi or w == 0:
                continue
            after = max((load[hi] - w) / cap[hi], (load[lo] + w) / cap[lo])
            if after < worst - 1e-9 and (best is None or after < best[0]):
                best = (after, p)
        if best is None:
            break
        p = best[1]
        w = weights.get(p, 0)
        owner[p] = lo
        load[hi] -= w
        load[lo] += w
        count[hi] -= 1
        count[lo] += 1
    # spread empty partitions evenly too (they receive future cameras); moving them costs nothing
    for _ in range(len(partitions)):
        hi = max(ids, key=lambda x: (count[x] / cap[x], x))
        lo = min(ids, key=lambda x: (count[x] / cap[x], x))
        if count[hi] - count[lo] <= 1:
            break
        empties = [p for p, m in owner.items() if m == hi and weights.get(p, 0) == 0]
        if not empties:
            break
        owner[max(empties)] = lo
        count[hi] -= 1
        count[lo] += 1
    out: dict[str, list[int]] = {m: [] for m in ids}
    for p, m in owner.items():
        out[m].append(p)
    return {m: sorted(ps) for m, ps in out.items()}


def cooperative_round(plan: Mapping[str, list[int]], members: Mapping[str, MemberInfo]) -> dict[str, list[int]]:
    """KIP-429 first round: hold back every partition that still belongs to another member.

    Its owner sees it missing, revokes it (stopping those cameras) and rejoins;
    the next round hands it to its new owner. So no partition, and no camera,
    is ever owned by two members at once.
    """
    current: dict[int, str] = {}
    for m in sorted(members):
        for p in members[m].owned:
            current.setdefault(p, m)
    return {m: [p for p in ps if current.get(p, m) == m] for m, ps in plan.items()}


# -- the Kafka assignor ---------------------------------------------------------------------------------------------


class WeightedAssignor(AbstractPartitionAssignor):  # type: ignore[misc]  # kafka-python is untyped
    """Cooperative assignor balancing partition *weights* (cameras, for the registry) relative to capacity.

    ``weights`` returns the weight of each partition of ``weighted_topic``;
    only the group leader's answer is used. When it returns None (the leader's
    view is not loaded yet) every partition weighs 1. Each member declares its
    id and capacity in the subscription's user data.
    """

    name = "kuzet-camera-balanced"
    version = 1  # ConsumerProtocolSubscription v1 carries owned_partitions (KIP-429)

    def __init__(
        self, weights: Callable[[], Mapping[int, int] | None], capacity: int, worker_id: str, weighted_topic: str
    ) -> None:
        self._weights = weights
        self.weighted_topic = weighted_topic
        self.capacity = capacity
        self.worker_id = worker_id
        self._owned: list[TopicPartition] = []
        self.last_plan: dict[str, list[int]] = {}
        self.assignments = 0

    def supported_protocols(self) -> list[RebalanceProtocol]:
        return [RebalanceProtocol.COOPERATIVE]

    def metadata(self, topics_: set[str]) -> ConsumerProtocolSubscription:
        sub_tp = ConsumerProtocolSubscription.TopicPartition
        by_topic: dict[str, list[int]] = {}
        for tp in self._owned:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        user = json.dumps({"worker_id": self.worker_id, "capacity": self.capacity}).encode()
        return ConsumerProtocolSubscription(
            version=self.version,
            topics=sorted(topics_),
            user_data=user,
            owned_partitions=[sub_tp(topic=t, partitions=sorted(ps)) for t, ps in sorted(by_topic.items())],
        )

    def on_assignment(self, assignment: ConsumerProtocolAssignment, generation: int) -> None:
        self._owned = list(assignment.partitions())

    def assign(self, cluster: Any, members: Sequence[Any]) -> dict[str, ConsumerProtocolAssignment]:
        infos: dict[str, _ParsedMember] = {}
        subscribed: set[str] = set()
        for member in members:
            meta = member.metadata
            subscribed.update(meta.topics)
            infos[member.member_id] = parse_member(meta)
        weights = self._weights() or {}
        result: dict[str, ConsumerProtocolAssignment] = {}
        per_topic: dict[str, dict[str, list[int]]] = {}
        for topic in sorted(subscribed):
            parts = sorted(cluster.partitions_for_topic(topic) or [])
            topic_infos = {
                m: MemberInfo(i.capacity, frozenset(i.owned_by_topic.get(topic, ())), i.worker_id)
                for m, i in infos.items()
            }
            w = weights if weights else dict.fromkeys(parts, 1)
            plan = plan_assignment(parts, topic_infos, w)
            per_topic[topic] = cooperative_round(plan, topic_infos)
            if topic == self.weighted_topic:
                self.last_plan = plan
        for member in members:
            mid = member.member_id
            assigned = [(t, per_topic[t].get(mid, [])) for t in sorted(per_topic) if per_topic[t].get(mid)]
            result[mid] = ConsumerProtocolAssignment(self.version, assigned, b"")
        self.assignments += 1
        log.info(
            "assignment computed for %d member(s): weight per member %s",
            len(members),
            {infos[m].worker_id or m: sum(weights.get(p, 0) for p in ps) for m, ps in self.last_plan.items()},
        )
        return result


@dataclass(frozen=True, slots=True)
class _ParsedMember:
    capacity: int
    worker_id: str
    owned_by_topic: dict[str, list[int]]


def parse_member(meta: Any) -> _ParsedMember:
    """Capacity and worker id from a member's user data (defaults when absent or garbled), and what it owns."""
    capacity, worker_id = 1_000_000, ""
    try:
        doc = json.loads(bytes(meta.user_data or b"{}"))
        capacity = max(1, int(doc.get("capacity", capacity)))
        worker_id = str(doc.get("worker_id", ""))[:64]
    except (ValueError, TypeError, AttributeError):
        pass
    owned: dict[str, list[int]] = {}
    for tp in getattr(meta, "owned_partitions", None) or ():
        owned.setdefault(tp.topic, []).extend(tp.partitions)
    return _ParsedMember(capacity, worker_id, owned)


# -- a group member -------------------------------------------------------------------------------------------------


def _raw(tp: Any, r: Any) -> RawRecord:
    return RawRecord(tp.partition, r.offset, r.key, r.value, int(r.timestamp))


class GroupConsumer:
    """One member of ``group_id`` on ``topic`` with a :class:`WeightedAssignor`; offsets are never committed.

    ``on_assigned(partitions)`` and ``on_revoked(partitions, lost)`` run on the
    polling thread, inside :meth:`poll`, as Kafka's rebalance listener does.
    Not thread-safe: call it from the thread that polls.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group_id: str,
        *,
        client_id: str,
        assignor: WeightedAssignor,
        on_assigned: Callable[[list[int]], None],
        on_revoked: Callable[[list[int], bool], None],
        session_timeout_ms: int,
        heartbeat_interval_ms: int,
        max_poll_interval_ms: int,
    ) -> None:
        self.topic = topic
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap.split(","),
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
            max_poll_interval_ms=max_poll_interval_ms,
            partition_assignment_strategy=[assignor],
            **env_settings(),
        )
        self._consumer.subscribe([topic], listener=_Listener(topic, on_assigned, on_revoked))

    def _tp(self, partition: int) -> TopicPartition:
        return TopicPartition(self.topic, partition)

    def poll(self, timeout_ms: int, max_records: int) -> list[RawRecord]:
        batches = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        return [_raw(tp, r) for tp, records in batches.items() for r in records]

    def seek_to_beginning(self, partitions: Sequence[int]) -> None:
        if partitions:
            self._consumer.seek_to_beginning(*[self._tp(p) for p in partitions])

    def position(self, partition: int) -> int:
        return int(self._consumer.position(self._tp(partition)))

    def highwater(self, partition: int) -> int | None:
        """The partition's end as the fetcher last saw it (None before any fetch)."""
        high = self._consumer.highwater(self._tp(partition))
        return None if high is None else int(high)

    def end_offsets(self, partitions: Sequence[int]) -> dict[int, int]:
        ends = self._consumer.end_offsets([self._tp(p) for p in partitions])
        return {tp.partition: int(end) for tp, end in ends.items()}

    def close(self) -> None:
        self._consumer.close(autocommit=False)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # kafka-python is untyped
    def __init__(
        self,
        topic: str,
        on_assigned: Callable[[list[int]], None],
        on_revoked: Callable[[list[int], bool], None],
    ) -> None:
        self.topic = topic
        self.on_assigned = on_assigned
        self.on_revoked = on_revoked

    def _parts(self, tps: Any) -> list[int]:
        return sorted(tp.partition for tp in tps if tp.topic == self.topic)

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.on_revoked(self._parts(revoked), False)

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.on_assigned(self._parts(assigned))

    def on_partitions_lost(self, lost: Any) -> None:
        self.on_revoked(self._parts(lost), True)


# -- following a whole topic ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FollowedBatch:
    records: list[RawRecord]
    caught_up: bool  # every partition has been read up to where it ended when the follower started
    lag: int  # records behind the partitions' current ends


def follow_topic(bootstrap: str, topic: str, *, client_id: str, stop: threading.Event) -> Iterator[FollowedBatch]:
    """Read every partition of ``topic`` from its beginning (no group) and keep following, until ``stop``.

    Waits for the topic to exist. Raises kafka-python's errors when the broker
    fails: the caller decides whether to follow again.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        client_id=client_id,
        group_id=None,
        enable_auto_commit=False,
        **env_settings(),
    )
    try:
        parts: set[int] | None = None
        while not parts and not stop.is_set():
            parts = consumer.partitions_for_topic(topic)
            if not parts:
                stop.wait(1.0)
        if stop.is_set() or not parts:
            return
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        caught_up = False
        while not stop.is_set():
            records = [_raw(tp, r) for tp, rs in consumer.poll(timeout_ms=500, max_records=5000).items() for r in rs]
            caught_up = caught_up or all(consumer.position(tp) >= ends[tp] for tp in tps)
            lag = sum(max(0, (consumer.highwater(tp) or 0) - consumer.position(tp)) for tp in tps)
            yield FollowedBatch(records, caught_up, lag)
    finally:
        consumer.close(autocommit=False)
