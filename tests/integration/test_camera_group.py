"""Twelve worker processes on a registry of eight partitions: camera-level assignment, adds, a forced split.

Its own Kafka broker (the registry must be *created* with 8 partitions, and the session broker's registry
may already exist with 64), sim:// cameras (no video: the control plane only), and twelve
``python -m kuzet.commands.scaleout`` processes with a 6 s session timeout (the broker's minimum).
Everything is checked from the status stream ``kuzet.camera-status.v1``, as an operator would: every
status carries its worker and the group generation it was sent under, and a fenced worker sends none.

"Never on two workers" is checked on the whole stream: for each camera, the span from a worker's first to
its last status in one run of statuses may not overlap another worker's span for that camera. Heartbeats
every second make the spans a lower bound of the time a worker held the camera, so an overlap here is a
real double ownership, never an artefact.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from benchmarks.scaleout_config import PERSON_MODEL, write_worker_config
from benchmarks.status_follow import follow_statuses, worker_spans
from event_bus.kafka_group import FollowedBatch
from worker.registry import CameraRegistry, validate_camera

pytestmark = [pytest.mark.services, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
GROUP = "kuzet-camera-group-test"
N_WORKERS = 12
N_CAMERAS = 96
N_ADDED = 24
CAPACITY = 16
SESSION_MS = 6000  # the broker's group.min.session.timeout.ms


@dataclass
class Status:
    camera: str
    worker: str
    generation: int | None
    at: float
    state: str


@dataclass
class StatusStream:
    """Every camera status since the cluster started, read by a follower thread."""

    bootstrap: str
    statuses: list[Status] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        follow_statuses(self.bootstrap, "t-status", self.stop, self._take)

    def _take(self, batch: FollowedBatch) -> None:
        got = [_status(r.value) for r in batch.records]
        with self.lock:
            self.statuses.extend(s for s in got if s is not None)

    def since(self, t: float) -> list[Status]:
        with self.lock:
            return [s for s in self.statuses if s.at >= t]

    def owners(self, since: float) -> dict[str, set[str]]:
        """Camera -> workers that reported it (state up or down, not pending) since ``since``."""
        out: dict[str, set[str]] = {}
        for s in self.since(since):
            out.setdefault(s.camera, set()).add(s.worker)
        return out

    def latest_owner(self) -> dict[str, str]:
        with self.lock:
            ordered = sorted(self.statuses, key=lambda s: s.at)
        return {s.camera: s.worker for s in ordered}

    def overlaps(self) -> list[str]:
        """Cameras whose spans on two workers overlap in time (see the module docstring)."""
        with self.lock:
            spans = worker_spans((s.camera, s.worker, s.at) for s in self.statuses)
        bad = []
        for cam, runs in spans.items():
            for a, b in itertools.pairwise(runs):
                if a.worker != b.worker and b.first <= a.last:
                    bad.append(f"{cam}: {a.worker} until {a.last:.3f}, {b.worker} from {b.first:.3f}")
            # a worker that comes back to a camera after another held it: the other's span must have ended
            seen: dict[str, float] = {}
            for span in runs:
                for other, other_last in seen.items():
                    if other != span.worker and span.first < other_last:
                        bad.append(f"{cam}: {span.worker} from {span.first:.3f} while {other} until {other_last:.3f}")
                seen[span.worker] = span.last
        return bad


def _status(value: bytes | None) -> Status | None:
    try:
        doc = json.loads(value or b"")
        if str(doc.get("reason", "")).startswith("unassigned-capacity"):
            return None
        at = datetime.fromisoformat(str(doc["at"]).replace("Z", "+00:00")).timestamp()
        return Status(str(doc["camera_id"]), str(doc["worker_id"]), doc.get("generation"), at, str(doc["state"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


@dataclass
class Cluster:
    bootstrap: str
    tmp: Path
    stream: StatusStream
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start_worker(self, worker_id: str) -> None:
        d = self.tmp / worker_id
        write_worker_config(d, worker_id, self.bootstrap, [PERSON_MODEL], ingest={"simulation": True})
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        args = ["--config", str(d / "config.yaml"), "--group", GROUP, "--capacity", str(CAPACITY)]
        args += ["--metrics-port", "0", "--journal", str(d / "journal.jsonl"), "--status-interval", "1"]
        args += ["--session-timeout-ms", str(SESSION_MS)]
        with (d / "worker.log").open("ab") as sink:
            self.procs[worker_id] = subprocess.Popen(
                [sys.executable, "-m", "kuzet.commands.scaleout", *args],
                cwd=REPO,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )

    def logs(self) -> str:
        parts = []
        for wid in self.procs:
            log = self.tmp / wid / "worker.log"
            tail = log.read_text(encoding="utf-8", errors="replace")[-1500:] if log.exists() else ""
            parts.append(f"--- {wid} (rc={self.procs[wid].poll()}) ---\n{tail}")
        return "\n".join(parts)


def _sim_camera(i: int) -> Any:
    return validate_camera({"id": f"sim-{i:04d}", "url": f"sim:///sim-{i:04d}?seed=3&mtbf_s=3600&connect_s=0.2"})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from deploy.services.kafka import KafkaService

    tmp = tmp_path_factory.mktemp("camera-group")
    kafka = KafkaService(tmp / "kafka", die_with_parent=True)
    kafka.start()
    registry = CameraRegistry(str(kafka.bootstrap))
    registry.ensure_topic(partitions=8)
    registry.put([_sim_camera(i) for i in range(N_CAMERAS)])
    stream = StatusStream(str(kafka.bootstrap))
    follower = threading.Thread(target=stream.run, daemon=True)
    follower.start()
    c = Cluster(str(kafka.bootstrap), tmp, stream)
    try:
        yield c
    finally:
        for p in c.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.send_signal(signal.SIGTERM)
        for p in c.procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        stream.stop.set()
        follower.join(10)
        registry.close()
        kafka.stop()


def wait_for(predicate: Any, timeout_s: float, what: str, c: Cluster) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if predicate():
            return time.monotonic() - start
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}\n{c.logs()}")


def _settled(c: Cluster, cameras: set[str], window_s: float = 5.0) -> dict[str, str] | None:
    """Camera -> its one worker, when every camera was reported in the last ``window_s`` by exactly one worker."""
    owners = c.stream.owners(time.time() - window_s)
    if set(owners) != cameras or any(len(ws) != 1 for ws in owners.values()):
        return None
    return {cam: next(iter(ws)) for cam, ws in owners.items()}


def _wait_settled(c: Cluster, cameras: set[str]) -> dict[str, str]:
    wait_for(lambda: _settled(c, cameras) is not None, 60, "every camera on one worker", c)
    return _settled(c, cameras) or _wait_settled(c, cameras)


def test_twelve_workers_on_eight_partitions_each_camera_on_one_worker(cluster: Cluster) -> None:
    assert len(CameraRegistry(cluster.bootstrap).snapshot().cameras) == N_CAMERAS
    for i in range(N_WORKERS):
        cluster.start_worker(f"w{i:02d}")
    cams = {f"sim-{i:04d}" for i in range(N_CAMERAS)}

    def balanced() -> dict[str, str] | None:  # equal capacities: 8 cameras on each of the 12 workers
        owners = _settled(cluster, cams)
        if owners is None or set(Counter(owners.values()).values()) != {N_CAMERAS // N_WORKERS}:
            return None
        return owners if len(set(owners.values())) == N_WORKERS else None

    wait_for(lambda: balanced() is not None, 300, f"{N_CAMERAS} cameras, 8 on each worker", cluster)
    assert cluster.stream.overlaps() == []


def test_added_cameras_move_nothing_else(cluster: Cluster) -> None:
    cams = {f"sim-{i:04d}" for i in range(N_CAMERAS)}
    before = _wait_settled(cluster, cams)
    added_at = time.time()
    CameraRegistry(cluster.bootstrap).put([_sim_camera(i) for i in range(N_CAMERAS, N_CAMERAS + N_ADDED)])
    allcams = {f"sim-{i:04d}" for i in range(N_CAMERAS + N_ADDED)}
    per_worker = (N_CAMERAS + N_ADDED) // N_WORKERS

    def balanced() -> dict[str, str] | None:
        owners = _settled(cluster, allcams)
        ok = owners is not None and set(Counter(owners.values()).values()) == {per_worker}
        return owners if ok else None

    wait_for(lambda: balanced() is not None, 120, "added cameras running, 10 on each worker", cluster)
    after = balanced() or {}
    moved = sorted(c for c in before if after.get(c, before[c]) != before[c])
    assert moved == [], f"quotas only grew (8 -> 10 each): no running camera had to move, moved {moved}"
    owners_over_time: dict[str, set[str]] = {}
    for st in cluster.stream.since(added_at):
        owners_over_time.setdefault(st.camera, set()).add(st.worker)
    assert not [c for c in before if owners_over_time.get(c, set()) - {before[c]}], "a running camera moved"
    assert cluster.stream.overlaps() == []


def test_forced_split_never_shows_a_camera_on_two_workers(cluster: Cluster) -> None:
    allcams = {f"sim-{i:04d}" for i in range(N_CAMERAS + N_ADDED)}
    owners = _wait_settled(cluster, allcams)
    victim = "w03"
    theirs = {c for c, w in owners.items() if w == victim}
    assert theirs
    proc = cluster.procs[victim]
    proc.send_signal(signal.SIGSTOP)
    paused_at = time.time()
    try:
        # the coordinator expels it after the session timeout; its cameras go to the others
        wait_for(
            lambda: all(cluster.stream.latest_owner().get(c) not in (None, victim) for c in theirs),
            120,
            "the paused worker's cameras running elsewhere",
            cluster,
        )
        taken_after = time.time() - paused_at
        assert taken_after >= SESSION_MS / 1000 * 0.5, "moved only once its session could have lapsed"
    finally:
        proc.send_signal(signal.SIGCONT)
    resumed_at = time.time()

    def victim_back() -> bool:  # resumed, it fences itself, rejoins empty and gets a balanced share again
        now = _settled(cluster, allcams)
        return now is not None and victim in set(now.values())

    wait_for(victim_back, 120, "the group settled after the split, the resumed worker holding cameras", cluster)
    assert cluster.stream.overlaps() == [], "a camera ran on two workers"
    after = [s for s in cluster.stream.since(paused_at - 1.0) if s.worker != victim or s.at >= resumed_at]
    assert after and all(s.generation is not None for s in after), "scale-out statuses carry their generation"
    journal = (cluster.tmp / victim / "journal.jsonl").read_text(encoding="utf-8")
    assert '"event": "fenced"' in journal, "the resumed worker fenced itself before rejoining"
    print(f"forced split: cameras of the paused worker ran elsewhere {taken_after:.1f} s after SIGSTOP")
