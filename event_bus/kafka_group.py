"""Kafka consumer groups for camera-level, cooperative, capacity-balanced ownership; following a topic to its end.

The worker's camera assignment (:mod:`worker.assignment`) rests on Kafka's
own group coordination; the Kafka side of it lives here, so that nothing
outside ``event_bus`` imports ``kafka``.

Why cameras, not partitions: a group that owns *partitions* of the registry
is capped at the registry's partition count (64) and rebalances only when
membership changes. Here every worker reads the whole compacted registry
(:func:`follow_topic`, no group: 20,000 cameras is about 12 MB), the group is
used for liveness and fencing only (members are assigned no partitions), and
the leader's assignor hands out camera ids in each member's assignment user
data. Members declare their worker id, capacity and the cameras they still
run in their subscription user data.

* :func:`plan_cameras` and :func:`cooperative_round`: the plan (pure,
  unit-tested): cameras per member in proportion to declared capacity, sticky
  (a camera moves only when its owner left or balance requires it, and then
  only the fewest), never handing a camera to a new owner while any member
  still reports running it (KIP-429's two phases, at camera level);
* :class:`CameraAssignor`: that plan as a kafka-python assignor (protocol
  name ``kuzet-cameras``);
* :class:`GroupConsumer`: a member of such a group, with its generation, the
  age of its last successful heartbeat (self-fencing) and a rejoin request;
* :func:`follow_topic`: every partition of a topic read from its beginning,
  with no group, telling when it has caught up.

Records come out as :class:`~event_bus.kafka_admin.RawRecord` (tombstones
keep their ``None`` value).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.coordinator.assignors.abstract import AbstractPartitionAssignor, RebalanceProtocol
from kafka.protocol.consumer.metadata import ConsumerProtocolAssignment, ConsumerProtocolSubscription

from event_bus.kafka_admin import RawRecord
from event_bus.kafka_security import env_settings

log = logging.getLogger(__name__)


# -- the assignment plan (pure, unit-tested) ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """What a member tells the leader when it joins: its capacity and the cameras it runs now."""

    capacity: int
    owned: frozenset[str] = frozenset()
    worker_id: str = ""


def quotas(total: int, members: Mapping[str, MemberInfo]) -> dict[str, int]:
    """Cameras per member, proportional to capacity (largest remainders; ties by member id), summing to ``total``."""
    ids = sorted(members)
    if not ids:
        return {}
    caps = {m: max(1, members[m].capacity) for m in ids}
    cap_sum = sum(caps.values())
    exact = {m: total * caps[m] / cap_sum for m in ids}
    out = {m: int(exact[m]) for m in ids}
    rest = total - sum(out.values())
    for m in sorted(ids, key=lambda x: (-(exact[x] - out[x]), x))[:rest]:
        out[m] += 1
    return out


def plan_cameras(cameras: Collection[str], members: Mapping[str, MemberInfo]) -> dict[str, list[str]]:
    """Cameras per member: balanced to :func:`quotas`, moving the fewest cameras that balance requires.

    1. A camera stays with the member that runs it (if it is still in the
       registry; a camera two members claim stays with neither here, see
       :func:`cooperative_round`).
    2. A member above its quota gives up only its excess (its last cameras in
       id order, so the choice is deterministic).
    3. Free cameras (new, orphaned by a member that left, or given up) fill the
       members below quota, in id order.

    Adding cameras only raises quotas, so nobody is above quota and no running
    camera moves unless capacities make it necessary.
    """
    if not members:
        return {}
    ids = sorted(members)
    wanted = set(cameras)
    claims: dict[str, list[str]] = {}
    for m in ids:
        for cam in members[m].owned:
            if cam in wanted:
                claims.setdefault(cam, []).append(m)
    keep: dict[str, list[str]] = {m: [] for m in ids}
    for cam, who in claims.items():
        if len(who) == 1:
            keep[who[0]].append(cam)
    quota = quotas(len(wanted), members)
    free = sorted(wanted - {c for cs in keep.values() for c in cs})
    out: dict[str, list[str]] = {}
    for m in ids:
        mine = sorted(keep[m])
        if len(mine) > quota[m]:
            free.extend(mine[quota[m] :])
            mine = mine[: quota[m]]
        out[m] = mine
    free.sort()
    it = iter(free)
    for m in ids:
        room = quota[m] - len(out[m])
        if room > 0:
            out[m].extend(c for _, c in zip(range(room), it, strict=False))
    return {m: sorted(cs) for m, cs in out.items()}


def cooperative_round(plan: Mapping[str, list[str]], members: Mapping[str, MemberInfo]) -> dict[str, list[str]]:
    """KIP-429's first round, per camera: hold back every camera some *other* member still runs.

    Its owner sees it missing from its assignment, stops it and rejoins,
    reporting it no longer runs it; the next round hands it to its new owner.
    So no camera is ever assigned to one member while another reports it.
    """
    runners: dict[str, set[str]] = {}
    for m, info in members.items():
        for cam in info.owned:
            runners.setdefault(cam, set()).add(m)
    return {m: [c for c in cams if not (runners.get(c, set()) - {m})] for m, cams in plan.items()}


def moved(before: Mapping[str, Collection[str]], after: Mapping[str, Collection[str]]) -> int:
    """Cameras that ran on one member before and are planned on a different member after."""
    where = {c: m for m, cs in before.items() for c in cs}
    return sum(1 for m, cs in after.items() for c in cs if c in where and where[c] != m)


def minimum_moves(
    owned: Mapping[str, Collection[str]], cameras: Collection[str], members: Mapping[str, MemberInfo]
) -> int:
    """The fewest running cameras any exact-quota plan must move: each member's excess over its quota."""
    wanted = set(cameras)
    quota = quotas(len(wanted), members)
    return sum(max(0, len(set(owned.get(m, ())) & wanted) - quota[m]) for m in members)


# -- user data ------------------------------------------------------------------------------------------------------


def encode_member(worker_id: str, capacity: int, owned: Collection[str]) -> bytes:
    return json.dumps({"worker_id": worker_id, "capacity": capacity, "owned": sorted(owned)}).encode()


def parse_member(user_data: bytes | None) -> MemberInfo:
    """Capacity, worker id and running cameras from a member's user data (defaults when absent or garbled)."""
    capacity, worker_id, owned = 1, "", frozenset[str]()
    try:
        doc = json.loads(bytes(user_data or b"{}"))
        capacity = max(1, int(doc.get("capacity", capacity)))
        worker_id = str(doc.get("worker_id", ""))[:64]
        raw = doc.get("owned", [])
        owned = frozenset(str(c) for c in raw) if isinstance(raw, list) else frozenset()
    except (ValueError, TypeError, AttributeError):
        pass
    return MemberInfo(capacity, owned, worker_id)


def encode_cameras(cameras: Sequence[str]) -> bytes:
    return json.dumps({"cameras": sorted(cameras)}).encode()


def parse_cameras(user_data: bytes | None) -> list[str]:
    """Camera ids of an assignment's user data ([] when absent or garbled: the member then runs nothing)."""
    try:
        doc = json.loads(bytes(user_data or b"{}"))
        raw = doc.get("cameras", [])
        return [str(c) for c in raw] if isinstance(raw, list) else []
    except (ValueError, TypeError, AttributeError):
        return []


# -- the Kafka assignor ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Assigned:
    """One member's share of one generation: the cameras it may run, and since when (monotonic clock)."""

    generation: int
    cameras: frozenset[str]
    at: float


class CameraAssignor(AbstractPartitionAssignor):  # type: ignore[misc]  # kafka-python is untyped
    """Hands out camera ids (not partitions) in the assignment user data, by :func:`plan_cameras`.

    ``cameras`` returns the registry's enabled camera ids as this member sees
    them, or None while its view is still loading; only the leader's answer
    is used (a leader that has not loaded the registry plans with the cameras
    members already run, and rejoins once loaded). ``owned`` returns the
    cameras this member still runs, reported at every join.
    """

    name = "kuzet-cameras"
    version = 1

    def __init__(
        self,
        cameras: Callable[[], Collection[str] | None],
        owned: Callable[[], Collection[str]],
        on_assigned: Callable[[Assigned], None],
        capacity: int,
        worker_id: str,
    ) -> None:
        self._cameras = cameras
        self._owned = owned
        self._on_assigned = on_assigned
        self.capacity = capacity
        self.worker_id = worker_id
        self.planned_for: frozenset[str] | None = None  # the camera set of the last plan this member made as leader
        self.last_plan: dict[str, list[str]] = {}
        self.last_moves = 0
        self.assignments = 0

    def supported_protocols(self) -> list[RebalanceProtocol]:
        return [RebalanceProtocol.COOPERATIVE]

    def metadata(self, topics_: set[str]) -> ConsumerProtocolSubscription:
        return ConsumerProtocolSubscription(
            version=self.version,
            topics=sorted(topics_),
            user_data=encode_member(self.worker_id, self.capacity, self._owned()),
            owned_partitions=[],
        )

    def on_assignment(self, assignment: ConsumerProtocolAssignment, generation: int) -> None:
        cams = frozenset(parse_cameras(assignment.user_data))
        self._on_assigned(Assigned(int(generation), cams, time.monotonic()))

    def assign(self, cluster: Any, members: Sequence[Any]) -> dict[str, ConsumerProtocolAssignment]:
        infos = {m.member_id: parse_member(m.metadata.user_data) for m in members}
        view = self._cameras()
        cameras = set(view) if view is not None else {c for i in infos.values() for c in i.owned}
        plan = plan_cameras(cameras, infos)
        final = cooperative_round(plan, infos)
        self.planned_for = frozenset(cameras) if view is not None else None
        self.last_moves = moved({m: i.owned for m, i in infos.items()}, plan)
        self.last_plan = plan
        self.assignments += 1
        log.info(
            "camera assignment for %d member(s), %d camera(s), %d moving: %s",
            len(members),
            len(cameras),
            self.last_moves,
            {infos[m].worker_id or m: f"{len(final[m])}/{len(plan[m])}/{infos[m].capacity}" for m in sorted(plan)},
        )
        return {m: ConsumerProtocolAssignment(self.version, [], encode_cameras(final.get(m, []))) for m in infos}


# -- a group member -------------------------------------------------------------------------------------------------


def _raw(tp: Any, r: Any) -> RawRecord:
    return RawRecord(tp.partition, r.offset, r.key, r.value, int(r.timestamp))


class GroupConsumer:
    """One member of ``group_id`` with a :class:`CameraAssignor`: liveness and assignment only, no records.

    It subscribes to ``topic`` (a group needs a subscription) but is assigned
    no partitions; offsets are never committed. Not thread-safe except
    :meth:`heartbeat_age_s`, :meth:`generation` and :meth:`request_rejoin`,
    which read or set single attributes.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group_id: str,
        *,
        client_id: str,
        assignor: CameraAssignor,
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
            auto_offset_reset="latest",
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
            max_poll_interval_ms=max_poll_interval_ms,
            partition_assignment_strategy=[assignor],
            **env_settings(),
        )
        self._consumer.subscribe([topic])
        # kafka-python keeps its coordinator private; generation, heartbeat times and rejoin live there
        self._coordinator: Any = self._consumer._coordinator

    def poll(self, timeout_ms: int) -> None:
        """Join, heartbeat bookkeeping and rebalances happen in here (assignor callbacks included)."""
        self._consumer.poll(timeout_ms=timeout_ms, max_records=1)

    def generation(self) -> int | None:
        """The current generation, or None while unjoined or rebalancing."""
        gen = self._coordinator.generation_if_stable()
        return None if gen is None else int(gen.generation_id)

    def heartbeat_age_s(self, since: float) -> float:
        """Seconds since the coordinator last acknowledged us: a heartbeat, or the join at ``since`` (monotonic)."""
        return time.monotonic() - max(float(self._coordinator.heartbeat.last_receive), since)

    def rebalancing(self) -> bool:
        """True while a join / sync is under way (kafka-python sends no heartbeats then)."""
        return bool(self._coordinator.rebalance_in_progress())

    def expelled(self) -> bool:
        """True once the coordinator told us our generation or member id is no longer valid."""
        return int(self._coordinator.group_metadata().generation_id) < 0

    def is_leader(self) -> bool:
        return bool(getattr(self._coordinator, "_is_leader", False))

    def request_rejoin(self) -> None:
        """Make the next :meth:`poll` rejoin: the leader then plans again (cameras released or registry changed)."""
        self._coordinator.request_rejoin()

    def close(self) -> None:
        self._consumer.close(autocommit=False)


# -- following a whole topic ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FollowedBatch:
    records: list[RawRecord]
    caught_up: bool  # every partition has been read up to where it ended when the follower started
    lag: int  # records behind the partitions' current ends
    partitions: int = 0


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
            yield FollowedBatch(records, caught_up, lag, len(tps))
    finally:
        consumer.close(autocommit=False)
