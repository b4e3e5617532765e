"""``kuzet status``: which worker runs which camera, and in what state — from Kafka alone.

Three sources, all on the broker, so the command works from any machine that
reaches Kafka (no access to the workers' pods needed):

* the worker group's description: members, the partitions each owns, and the
  worker id and capacity each declared when it joined (assignor user data);
* the registry topic: every camera and the partition it lives on;
* ``kuzet.camera-status.v1`` over the last ``--since`` minutes: each camera's
  latest reported state (workers send a heartbeat per camera every 30 s, and
  an ``unassigned-capacity`` status for cameras a full worker could not start).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any

import typer

from worker.assignment import DEFAULT_GROUP, PENDING_REASON

app = typer.Typer(help="Cameras per worker and each camera's state.", add_completion=False)


@dataclass
class WorkerRow:
    worker_id: str
    member_id: str
    host: str
    capacity: int | None
    partitions: list[int] = field(default_factory=list)
    cameras: list[str] = field(default_factory=list)


@dataclass
class CameraRow:
    camera_id: str
    enabled: bool
    partition: int
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


def _field(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _assigned_partitions(assignment: Any, topic: str) -> list[int]:
    out: list[int] = []
    for entry in _field(assignment, "assigned_partitions", None) or _field(assignment, "assignment", None) or []:
        if isinstance(entry, (list, tuple)) and len(entry) == 2:
            t, parts = entry
        else:
            t, parts = _field(entry, "topic"), _field(entry, "partitions", [])
        if t == topic:
            out.extend(int(p) for p in parts)
    return sorted(out)


def describe_workers(bootstrap: str, group: str) -> tuple[str, list[WorkerRow]]:
    """Members of the worker group with their declared id / capacity and registry partitions."""
    from kafka import KafkaAdminClient

    from event_bus import topics

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id="kuzet-status")
    try:
        desc = admin.describe_groups([group]).get(group, {})
    finally:
        admin.close()
    rows: list[WorkerRow] = []
    for m in desc.get("members", []) or []:
        meta = _field(m, "member_metadata")
        worker_id, capacity = "", None
        raw = _field(meta, "user_data", b"") if meta is not None else b""
        try:
            doc = json.loads(raw if isinstance(raw, str) and raw else bytes(raw or b"{}"))
            worker_id = str(doc.get("worker_id", ""))
            capacity = int(doc["capacity"]) if "capacity" in doc else None
        except (ValueError, TypeError, KeyError):
            pass
        rows.append(
            WorkerRow(
                worker_id=worker_id or str(_field(m, "client_id", "?")),
                member_id=str(_field(m, "member_id", "")),
                host=str(_field(m, "client_host", "")).lstrip("/"),
                capacity=capacity,
                partitions=_assigned_partitions(_field(m, "member_assignment"), topics.CAMERAS),
            )
        )
    return str(desc.get("group_state") or desc.get("state") or "unknown"), sorted(rows, key=lambda r: r.worker_id)


def latest_statuses(bootstrap: str, since_s: float, timeout_s: float = 15.0) -> dict[str, dict[str, Any]]:
    """The newest CameraStatus per camera from the last ``since_s`` seconds of ``kuzet.camera-status.v1``."""
    from kafka import KafkaConsumer, TopicPartition

    from event_bus import topics

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None, enable_auto_commit=False)
    latest: dict[str, dict[str, Any]] = {}
    try:
        parts = consumer.partitions_for_topic(topics.CAMERA_STATUS) or set()
        tps = [TopicPartition(topics.CAMERA_STATUS, p) for p in sorted(parts)]
        if not tps:
            return latest
        consumer.assign(tps)
        start_ms = int((time.time() - since_s) * 1000)
        offsets = consumer.offsets_for_times(dict.fromkeys(tps, start_ms))
        ends = consumer.end_offsets(tps)
        for tp in tps:
            found = offsets.get(tp)
            consumer.seek(tp, found.offset if found is not None else ends[tp])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(consumer.position(tp) < ends[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=500, max_records=5000).values():
                for r in records:
                    try:
                        doc = json.loads(r.value)
                    except (TypeError, ValueError):
                        continue
                    cid = doc.get("camera_id") if isinstance(doc, dict) else None
                    if isinstance(cid, str) and (cid not in latest or str(doc.get("at")) >= str(latest[cid].get("at"))):
                        latest[cid] = doc
    finally:
        consumer.close(autocommit=False)
    return latest


def build_report(bootstrap: str, group: str = DEFAULT_GROUP, since_s: float = 900.0) -> StatusReport:
    from worker.registry import CameraRegistry

    reg = CameraRegistry(bootstrap)
    try:
        snap = reg.snapshot()
    finally:
        reg.close()
    group_state, workers = describe_workers(bootstrap, group)
    owner: dict[int, WorkerRow] = {p: w for w in workers for p in w.partitions}
    statuses = latest_statuses(bootstrap, since_s)
    cameras: list[CameraRow] = []
    for cid in sorted(snap.cameras):
        entry = snap.cameras[cid]
        cam = entry.camera
        if cam is None:
            continue
        w = owner.get(entry.partition)
        st = statuses.get(cid)
        if not cam.enabled:
            state, reason = "disabled", ""
        elif w is None:
            state, reason = "unassigned", "no worker owns its partition"
        elif st is None:
            state, reason = "unknown", "no status reported recently"
        else:
            state, reason = str(st.get("state")), str(st.get("reason", ""))
            if reason.startswith(PENDING_REASON):
                state = "pending-capacity"
            elif st.get("worker_id") != w.worker_id:
                state, reason = "starting", f"moved from {st.get('worker_id')}"
        if w is not None and cam.enabled:
            w.cameras.append(cid)
        cameras.append(
            CameraRow(
                camera_id=cid,
                enabled=cam.enabled,
                partition=entry.partition,
                worker=w.worker_id if w else None,
                state=state,
                reason=reason,
                reported_by=st.get("worker_id") if st else None,
                reported_at=st.get("at") if st else None,
            )
        )
    return StatusReport(group, group_state, workers, cameras, len(snap.invalid))


@app.callback(invoke_without_command=True)
def status(
    bootstrap: Annotated[
        str, typer.Option("--bootstrap", "-b", envvar="KUZET_BUS__KAFKA__BOOTSTRAP_SERVERS", help="Kafka bootstrap")
    ] = "127.0.0.1:9092",
    group: Annotated[str, typer.Option(help="worker consumer group")] = DEFAULT_GROUP,
    since: Annotated[float, typer.Option(help="minutes of camera status history to read")] = 15.0,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Print cameras per worker and each camera's state."""
    try:
        report = build_report(bootstrap, group, since * 60.0)
    except Exception as exc:
        typer.echo(f"error: cannot read status from Kafka at {bootstrap}: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(3) from None
    if as_json:
        typer.echo(json.dumps(report.to_json(), default=str))
        return
    typer.echo(f"group {report.group}: {report.group_state}, {len(report.workers)} worker(s)")
    typer.echo(f"{'WORKER':<20} {'HOST':<16} {'CAPACITY':>8} {'PARTITIONS':>10} {'CAMERAS':>7}")
    for w in report.workers:
        cap = str(w.capacity) if w.capacity is not None else "-"
        typer.echo(f"{w.worker_id:<20} {w.host:<16} {cap:>8} {len(w.partitions):>10} {len(w.cameras):>7}")
    typer.echo("")
    typer.echo(f"{'CAMERA':<24} {'WORKER':<20} {'STATE':<17} REASON")
    for c in report.cameras:
        typer.echo(f"{c.camera_id:<24} {c.worker or '-':<20} {c.state:<17} {c.reason[:80]}")
    counts = ", ".join(f"{n} {s}" for s, n in sorted(report.counts().items()))
    typer.echo(f"\n{len(report.cameras)} camera(s): {counts or 'none'}; {report.invalid_records} invalid record(s)")


if __name__ == "__main__":
    app()
