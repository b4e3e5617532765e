"""The city-scale control plane: 20,000 ``sim://`` cameras on 20 worker processes, measured from Kafka.

``python -m benchmarks.city_scale`` (not in CI; run it with ``nice``) starts its own Kafka broker (or uses
``--bootstrap``), writes ``--cameras`` simulated cameras to the registry, starts ``--workers`` real
``kuzet scale-worker`` processes with mixed capacities (``--capacities 500,1500``), and measures, all from the
status stream ``kuzet.camera-status.v1`` (every status names its worker and group generation):

1. cold start: seconds from the first worker's launch until every camera has reported from a worker;
   cameras per worker against capacity (``kuzet status --json``, whose run time is measured too);
2. SIGKILL of two workers: seconds until each of their cameras reports from another worker, and the same
   less the session timeout (target ≤ 15 s);
3. ``--add`` more cameras: seconds until they all report, how many running cameras changed worker, and
   the fewest any capacity-balanced plan had to move (:func:`event_bus.kafka_group.minimum_moves`);
4. double ownership over the whole run: for each camera, one worker's span of statuses (first to last in
   a run) may not overlap another's;
5. status traffic (records/s, bytes/s over a steady window), Prometheus series per worker and in total
   (each worker's ``/metrics``), threads and resident memory per worker process.

Writes ``artifacts/benchmarks/city_scale.json`` and ``city_scale.png`` (cameras vs capacity per worker).
With a small run (``--cameras 2000 --workers 4``) the same figures come out in a few minutes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.scaleout_config import write_worker_config
from benchmarks.status_follow import follow_statuses, worker_spans
from event_bus.kafka_group import FollowedBatch, MemberInfo, minimum_moves
from worker.registry import CameraRegistry, validate_camera

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "artifacts" / "benchmarks"
PERSON = {"name": "person", "manifest_id": "ssdlite-person", "input_size": 300, "labels": {"person": "person"}}


@dataclass
class Stream:
    """Every camera status of the run: (camera, worker, generation, at) plus record and byte counts."""

    bootstrap: str
    rows: list[tuple[str, str, int | None, float]] = field(default_factory=list)
    counts: list[tuple[float, int, int]] = field(default_factory=list)  # (wall time, records, bytes) per batch
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        follow_statuses(self.bootstrap, "bench-st", self.stop, self._take)

    def _take(self, batch: FollowedBatch) -> None:
        got, size = [], 0
        for r in batch.records:
            size += len(r.value or b"") + len(r.key or b"")
            try:
                doc = json.loads(r.value or b"")
                if str(doc.get("reason", "")).startswith("unassigned-capacity"):
                    continue
                at = datetime.fromisoformat(str(doc["at"]).replace("Z", "+00:00")).timestamp()
                got.append((str(doc["camera_id"]), str(doc["worker_id"]), doc.get("generation"), at))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
        with self.lock:
            self.rows.extend(got)
            self.counts.append((time.time(), len(batch.records), size))

    def latest(self) -> dict[str, tuple[str, float]]:
        with self.lock:
            rows = sorted(self.rows, key=lambda r: r[3])
        return {cam: (w, at) for cam, w, _g, at in rows}

    def first_after(self, t: float, exclude: set[str] = frozenset()) -> dict[str, float]:  # type: ignore[assignment]
        out: dict[str, float] = {}
        with self.lock:
            for cam, w, _g, at in self.rows:
                if at >= t and w not in exclude and (cam not in out or at < out[cam]):
                    out[cam] = at
        return out

    def overlaps(self) -> int:
        with self.lock:
            spans = worker_spans((cam, w, at) for cam, w, _g, at in self.rows)
        return sum(
            1
            for runs in spans.values()
            for a, b in itertools.pairwise(runs)
            if a.worker != b.worker and b.first <= a.last
        )

    def traffic(self, since: float, until: float) -> tuple[float, float]:
        with self.lock:
            window = [(n, b) for t, n, b in self.counts if since <= t <= until]
        span = max(until - since, 1e-9)
        return sum(n for n, _ in window) / span, sum(b for _, b in window) / span


@dataclass
class Proc:
    worker_id: str
    capacity: int
    popen: subprocess.Popen[bytes]
    journal: Path


def _camera(i: int) -> Any:
    cid = f"city-{i:05d}"
    return validate_camera({"id": cid, "url": f"sim:///{cid}?seed=11&mtbf_s=3600&outage_s=30&connect_s=1"})


def _start_worker(args: argparse.Namespace, bootstrap: str, tmp: Path, wid: str, capacity: int) -> Proc:
    d = tmp / wid
    write_worker_config(d, wid, bootstrap, [PERSON], delivery_timeout_s=None, ingest={"simulation": True})
    cmd = [sys.executable, "-m", "kuzet.commands.scaleout", "--config", str(d / "config.yaml"), "--group", args.group]
    cmd += ["--capacity", str(capacity), "--metrics-port", "0", "--journal", str(d / "journal.jsonl")]
    cmd += ["--status-interval", str(args.status_interval), "--session-timeout-ms", str(args.session_timeout_ms)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with (d / "worker.log").open("ab") as log:
        popen = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    return Proc(wid, capacity, popen, d / "journal.jsonl")


def _wait(pred: Any, timeout_s: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if pred():
            return time.monotonic() - start
        time.sleep(1.0)
    raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")


def _url(p: Proc) -> str | None:
    try:
        for line in p.journal.read_text(encoding="utf-8").splitlines():
            doc = json.loads(line)
            if doc.get("event") == "listening":
                return str(doc["url"])
    except (OSError, ValueError):
        pass
    return None


def _count(p: Proc, event: str) -> int:
    try:
        return sum(1 for line in p.journal.read_text(encoding="utf-8").splitlines() if f'"event": "{event}"' in line)
    except OSError:
        return 0


def _series(p: Proc) -> int | None:
    url = _url(p)
    if url is None:
        return None
    body = urllib.request.urlopen(f"{url}/metrics", timeout=30).read().decode()
    return sum(1 for line in body.splitlines() if line and not line.startswith("#"))


def _proc_figures(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                out["threads"] = float(line.split()[1])
            elif line.startswith("VmRSS:"):
                out["rss_mb"] = round(float(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return out


def _status_command(bootstrap: str, group: str) -> tuple[float, dict[str, Any]]:
    t0 = time.monotonic()
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "kuzet.commands.status",
            "-b",
            bootstrap,
            "--group",
            group,
            "--json",
            "--timeout",
            "120",
        ],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    took = time.monotonic() - t0
    if res.returncode != 0:
        raise RuntimeError(f"kuzet status failed: {res.stderr[-500:]}")
    return took, json.loads(res.stdout)


def run(args: argparse.Namespace, result: dict[str, Any]) -> dict[str, Any]:
    """Fills ``result`` phase by phase, so a phase that times out still leaves the earlier figures."""
    tmp = Path(tempfile.mkdtemp(prefix="kuzet-city-"))
    kafka = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        from deploy.services.kafka import KafkaService

        kafka = KafkaService(tmp / "kafka", die_with_parent=True)
        kafka.start()
        bootstrap = str(kafka.bootstrap)
    caps = [int(c) for c in args.capacities.split(",")]
    registry = CameraRegistry(bootstrap, timeout_s=120)
    registry.ensure_topic(partitions=args.partitions)
    t0 = time.monotonic()
    for start in range(0, args.cameras, 2000):
        registry.put([_camera(i) for i in range(start, min(args.cameras, start + 2000))])
    result |= {
        "cameras": args.cameras,
        "workers": args.workers,
        "capacities": caps,
        "session_timeout_s": args.session_timeout_ms / 1000,
        "status_interval_s": args.status_interval,
        "registry_partitions": args.partitions,
        "registry_write_s": round(time.monotonic() - t0, 1),
        "cpus": os.cpu_count(),
        "load_avg_at_start": os.getloadavg()[0],
    }
    stream = Stream(bootstrap)
    follower = threading.Thread(target=stream.run, daemon=True)
    follower.start()
    procs: list[Proc] = []
    try:
        launch = time.time()
        for i in range(args.workers):
            procs.append(_start_worker(args, bootstrap, tmp, f"city-w{i:02d}", caps[i % len(caps)]))
        everyone = {f"city-{i:05d}" for i in range(args.cameras)}
        try:
            cold = _wait(lambda: everyone <= set(stream.first_after(launch)), args.timeout, "cold start")
        finally:
            result["cold_start_reporting"] = len(everyone & set(stream.first_after(launch)))
            result["fenced_per_worker"] = {p.worker_id: _count(p, "fenced") for p in procs}
            result["process"] = {p.worker_id: _proc_figures(p.popen.pid) for p in procs}
        result["cold_start_all_reporting_s"] = round(cold, 1)
        time.sleep(args.status_interval + 5)  # one full heartbeat round, then the steady-state window
        steady_from = time.time()
        time.sleep(args.steady_s)
        recs, byts = stream.traffic(steady_from, time.time())
        result["status_records_per_s"] = round(recs, 1)
        result["status_bytes_per_s"] = round(byts)
        took, report = _status_command(bootstrap, args.group)
        result["kuzet_status_s"] = round(took, 1)
        workers = {w["worker_id"]: w for w in report["workers"] if w["kind"] == "scale-worker"}
        result["per_worker"] = {
            wid: {"capacity": w["capacity"], "assigned": len(w["assigned"]), "cameras": len(w["cameras"])}
            for wid, w in sorted(workers.items())
        }
        result["status_counts"] = report["counts"]
        series = {p.worker_id: _series(p) for p in procs}
        result["prometheus_series_per_worker"] = series
        result["prometheus_series_total"] = sum(s or 0 for s in series.values())
        result["process"] = {p.worker_id: _proc_figures(p.popen.pid) for p in procs}

        # -- failover: SIGKILL two workers (one of each capacity when mixed) --------------------------------
        owners = {cam: w for cam, (w, _at) in stream.latest().items()}
        victims = [procs[0], procs[1]] if len(procs) > 2 else procs[:1]
        gone = {v.worker_id for v in victims}
        theirs = {c for c, w in owners.items() if w in gone}
        t_kill = time.time()
        for v in victims:
            v.popen.send_signal(signal.SIGKILL)
        took_over = _wait(lambda: theirs <= set(stream.first_after(t_kill, exclude=gone)), args.timeout, "failover")
        first = stream.first_after(t_kill, exclude=gone)
        last_moved = max(first[c] for c in theirs) - t_kill
        result["failover"] = {
            "killed": sorted(gone),
            "cameras_moved": len(theirs),
            "all_running_elsewhere_s": round(last_moved, 1),
            "after_session_timeout_s": round(last_moved - args.session_timeout_ms / 1000, 1),
            "seen_by_benchmark_s": round(took_over, 1),
        }
        time.sleep(args.status_interval + 5)

        # -- add cameras to the running group ---------------------------------------------------------------
        before = {cam: w for cam, (w, _at) in stream.latest().items()}
        alive = [p for p in procs if p.popen.poll() is None]
        members = {p.worker_id: MemberInfo(p.capacity) for p in alive}
        owned: dict[str, list[str]] = {}
        for cam, w in before.items():
            owned.setdefault(w, []).append(cam)
        new = {f"city-{i:05d}" for i in range(args.cameras, args.cameras + args.add)}
        t_add = time.time()
        registry.put([_camera(i) for i in range(args.cameras, args.cameras + args.add)])
        added = _wait(lambda: new <= set(stream.first_after(t_add)), args.timeout, "added cameras")
        time.sleep(args.status_interval + 5)
        after_rows = stream.first_after(t_add)
        moved_set = set()
        with stream.lock:
            for cam, w, _g, at in stream.rows:
                if at >= t_add and cam in before and w != before[cam]:
                    moved_set.add(cam)
        result["add"] = {
            "added": args.add,
            "all_reporting_s": round(added, 1),
            "running_cameras_moved": len(moved_set),
            "balance_minimum": minimum_moves(owned, set(before) | new, members),
            "reporting_after": len(after_rows),
        }
        result["double_ownership_overlaps"] = stream.overlaps()
        result["load_avg_at_end"] = os.getloadavg()[0]
    finally:
        for p in procs:
            if p.popen.poll() is None:
                p.popen.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.popen.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.popen.kill()
        stream.stop.set()
        registry.close()
        if kafka is not None:
            kafka.stop()
    return result


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per = result.get("per_worker", {})
    names = list(per)
    fig, ax = plt.subplots(figsize=(max(6, len(names) * 0.5), 4))
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [per[n]["capacity"] for n in names], width=0.4, label="capacity")
    ax.bar([i + 0.2 for i in x], [per[n]["assigned"] for n in names], width=0.4, label="cameras assigned")
    ax.set_xticks(list(x), [n.replace("city-", "") for n in names], rotation=60)
    ax.set_title(f"{result['cameras']:,} sim cameras on {result['workers']} workers: cameras vs capacity")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--cameras", type=int, default=20_000)
    ap.add_argument("--workers", type=int, default=20)
    ap.add_argument("--capacities", default="500,1500", help="capacities, cycled over the workers")
    ap.add_argument("--add", type=int, default=1000)
    ap.add_argument("--partitions", type=int, default=64, help="registry partitions (no cap on workers)")
    ap.add_argument("--status-interval", type=float, default=30.0, help="heartbeat period of each camera")
    ap.add_argument("--session-timeout-ms", type=int, default=8000)
    ap.add_argument("--steady-s", type=float, default=60.0, help="window for the status traffic figures")
    ap.add_argument("--timeout", type=float, default=900.0, help="limit for each phase")
    ap.add_argument("--group", default="kuzet-city-scale")
    ap.add_argument("--bootstrap", default=None, help="use this broker instead of starting one")
    ap.add_argument("--out", type=Path, default=OUT / "city_scale.json")
    args = ap.parse_args(argv)
    result: dict[str, Any] = {}
    try:
        run(args, result)
    except TimeoutError as exc:  # what caps the run is a result too: keep the phases that finished
        result["stopped"] = str(exc)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    _plot(result, args.out.with_suffix(".png"))
    print(json.dumps({k: v for k, v in result.items() if k not in ("per_worker", "process")}, indent=1))
    print(
        "per worker (capacity / assigned):",
        {k: (v["capacity"], v["assigned"]) for k, v in result.get("per_worker", {}).items()},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
