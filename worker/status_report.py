"""What ``kuzet status`` shows: which worker runs which camera, and in what state — from Kafka alone.

Three sources, all on the broker, so the report can be built from any machine
that reaches Kafka (no access to the workers' pods needed):

* the worker group's description: members, the cameras each was assigned
  (the assignment's user data, :mod:`event_bus.kafka_group`), and the worker
  id and capacity each declared when it joined (subscription user data);
* the registry topic: every camera (and the partition it hashes to);
* ``kuzet.camera-status.v1`` over the last ``since_s`` seconds: each camera's
  latest reported state (workers send a heartbeat per camera every
  ``worker.status_interval_s``, and an ``unassigned-capacity`` status for
  cameras a full worker could not start).

Workers started with ``kuzet worker`` (cameras from the YAML file) are not in
the group: they are found by their heartbeats, and their cameras are listed
from them. A camera whose latest status is older than ``stale_after_s`` (two
heartbeat intervals) is ``stale``: its worker stopped or lost the bus.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from event_bus import topics
from event_bus.kafka_admin import KafkaAdminError, describe_group, read_to_end
from worker.assignment import DEFAULT_GROUP, PENDING_REASON
from worker.registry import CameraRegistry


@dataclass
class WorkerRow:
    worker_id: str
    member_id: str
    host: str
    capacity: int | None
    assigned: list[str] = field(default_factory=list)  # what the leader gave it (scale-out workers)
    cameras: list[str] = field(default_factory=list)
    kind: str = "scale-worker"  # or "worker": a `kuzet worker` seen only through its heartbeats


@dataclass
class CameraRow:
    camera_id: str
    enabled: bool
    partition: int | None  # None: not in the registry (a camera from a `kuzet worker` config file)
    worker: str | None
    state: str
    reason: str
    reported_by: str | None
    reported_at: str | None


@dataclass
class StatusReport:
    group: str
    group_state: str
    workers: list[WorkerRow]
    cameras: list[CameraRow]
    invalid_records: int

    def counts(self) -> dict[str, int]:
        return dict(Counter(c.state for c in self.cameras))

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "group_state": self.group_state,
            "invalid_records": self.invalid_records,
            "workers": [asdict(w) for w in self.workers],
            "cameras": [asdict(c) for c in self.cameras],
            "counts": self.counts(),
        }


def describe_workers(bootstrap: str, group: str) -> tuple[str, list[WorkerRow]]:
    """Members of the worker group with their declared id / capacity and assigned cameras."""
    state, members = describe_group(bootstrap, group)
    rows: list[WorkerRow] = []
    for m in members:
        worker_id = str(m.user_data.get("worker_id", ""))
        try:
            capacity = int(m.user_data["capacity"]) if "capacity" in m.user_data else None
        except (TypeError, ValueError):
            capacity = None
        rows.append(
            WorkerRow(
                worker_id=worker_id or m.client_id,
                member_id=m.member_id,
                host=m.host,
                capacity=capacity,
                assigned=_camera_list(m.assigned.get("cameras")),
            )
        )
    return state, sorted(rows, key=lambda r: r.worker_id)


def latest_statuses(bootstrap: str, since_s: float, timeout_s: float = 15.0) -> dict[str, dict[str, Any]]:
    """The newest CameraStatus per camera from the last ``since_s`` seconds of ``kuzet.camera-status.v1``."""
    latest: dict[str, dict[str, Any]] = {}
    since_ms = int((time.time() - since_s) * 1000)
    for r in read_to_end(
        bootstrap, topics.CAMERA_STATUS, since_ms=since_ms, timeout_s=timeout_s, fail_on_timeout=False
    ):
        try:
            doc = json.loads(r.value or b"")
        except (TypeError, ValueError):
            continue
        cid = doc.get("camera_id") if isinstance(doc, dict) else None
        if isinstance(cid, str) and (cid not in latest or str(doc.get("at")) >= str(latest[cid].get("at"))):
            latest[cid] = doc
    return latest


def build_report(
    bootstrap: str,
    group: str = DEFAULT_GROUP,
    since_s: float = 900.0,
    stale_after_s: float = 60.0,
    timeout_s: float = 15.0,
) -> StatusReport:
    def registry_snapshot() -> Any:
        reg = CameraRegistry(bootstrap, timeout_s=timeout_s)
        try:
            return reg.snapshot()
        finally:
            reg.close()

    def group_members() -> tuple[str, list[WorkerRow]]:
        try:
            return describe_workers(bootstrap, group)
        except KafkaAdminError as exc:  # no group coordinator yet: only `kuzet worker`s have run
            return f"absent ({exc})", []

    # three independent reads, each with its own connection set-up: side by side, not one after the other
    with ThreadPoolExecutor(3, thread_name_prefix="status") as pool:
        snap_f = pool.submit(registry_snapshot)
        group_f = pool.submit(group_members)
        statuses_f = pool.submit(latest_statuses, bootstrap, since_s, timeout_s)
        snap, (group_state, workers), statuses = snap_f.result(), group_f.result(), statuses_f.result()
    owner: dict[str, WorkerRow] = {c: w for w in workers for c in w.assigned}
    now = datetime.now(UTC)
    cameras: list[CameraRow] = []
    for cid in sorted(snap.cameras):
        entry = snap.cameras[cid]
        cam = entry.camera
        if cam is None:
            continue
        w = owner.get(cid)
        st = statuses.get(cid)
        if not cam.enabled:
            state, reason = "disabled", ""
        elif w is None:
            state, reason = "unassigned", "no worker is assigned this camera"
        elif st is None:
            state, reason = "unknown", "no status reported recently"
        else:
            state, reason = _reported_state(st, now, stale_after_s)
            if reason.startswith(PENDING_REASON):
                state = "pending-capacity"
            elif st.get("worker_id") != w.worker_id:
                state, reason = "starting", f"moved from {st.get('worker_id')}"
        if w is not None and cam.enabled:
            w.cameras.append(cid)
        cameras.append(_camera_row(cid, cam.enabled, entry.partition, w.worker_id if w else None, state, reason, st))
    # cameras outside the registry: run by `kuzet worker` from its config file, known by their heartbeats
    file_workers: dict[str, WorkerRow] = {}
    known = {w.worker_id for w in workers}
    for cid in sorted(set(statuses) - set(snap.cameras)):
        st = statuses[cid]
        wid = str(st.get("worker_id") or "?")
        state, reason = _reported_state(st, now, stale_after_s)
        if wid not in known:
            file_workers.setdefault(wid, WorkerRow(wid, "", "", None, kind="worker")).cameras.append(cid)
        cameras.append(_camera_row(cid, True, None, wid, state, reason, st))
    workers += sorted(file_workers.values(), key=lambda r: r.worker_id)
    return StatusReport(group, group_state, workers, cameras, len(snap.invalid))


def _camera_list(raw: Any) -> list[str]:
    return [str(c) for c in raw] if isinstance(raw, list) else []


def _reported_state(st: dict[str, Any], now: datetime, stale_after_s: float) -> tuple[str, str]:
    """The reported state, or ``stale`` when no status came for ``stale_after_s`` (its worker stopped)."""
    state, reason = str(st.get("state")), str(st.get("reason", ""))
    try:
        at = datetime.fromisoformat(str(st.get("at")).replace("Z", "+00:00"))
    except ValueError:
        return state, reason
    age = (now - at).total_seconds()
    if state != "down" and age > stale_after_s:
        return "stale", f"no status for {age:.0f} s (was {state})"
    return state, reason


def _camera_row(
    cid: str, enabled: bool, partition: int | None, worker: str | None, state: str, reason: str, st: Any
) -> CameraRow:
    return CameraRow(
        camera_id=cid,
        enabled=enabled,
        partition=partition,
        worker=worker,
        state=state,
        reason=reason,
        reported_by=st.get("worker_id") if st else None,
        reported_at=st.get("at") if st else None,
    )
