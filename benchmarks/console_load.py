"""Console under load: 200 incidents a second for a minute into one open console.

``python -m benchmarks.console_load`` starts the console server in its own
process on the embedded local bus (or on Kafka with ``--kafka HOST:PORT``),
opens the live feed in Debian's Chromium (Playwright), and produces incidents
at ``--rate`` a second (each one a start and, two seconds later, an end: twice
that many events). Every second it samples:

* the page: DOM element count, cards shown, updates received, the longest
  event-loop stall (a 50 ms timer's worst lateness) and a scripted round trip;
* end-to-end latency, publish -> card state in the browser, of the newest incidents;
* the server's resident memory (``/proc/<pid>/status``) and CPU.

It prints a table and writes ``artifacts/benchmarks/console_load.json``.
Pass/fail criteria: the DOM stays bounded (cards <= max_cards), the page keeps
answering (p95 stall < 250 ms), and server RSS is flat (growth over the last
two thirds of the run < 15 %).

Why one module over 400 lines: one load run (publisher, browser page, server probes) whose parts share
the event-id accounting; split, none of them runs alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "artifacts" / "benchmarks" / "console_load.json"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

PROBE = """
// Every incident message on the wire, before the page's own dedupe: [incident_id, seq, rev] (delivery ledger).
window.__ledger = []; window.__resets = 0;
const __addListener = EventSource.prototype.addEventListener;
EventSource.prototype.addEventListener = function (type, fn, opts) {
  if (type === 'incident') {
    const inner = fn;
    fn = function (e) {
      try { const d = JSON.parse(e.data); window.__ledger.push([d.incident_id, d.seq, d.rev]); } catch (x) {}
      return inner.call(this, e);
    };
  } else if (type === 'reset') {
    const inner = fn;
    fn = function (e) { window.__resets += 1; return inner.call(this, e); };
  }
  return __addListener.call(this, type, fn, opts);
};
window.__probe = {maxLag: 0, last: performance.now()};
setInterval(() => {
  const now = performance.now();
  const lag = now - window.__probe.last - 50;
  if (lag > window.__probe.maxLag) window.__probe.maxLag = lag;
  window.__probe.last = now;
}, 50);
"""

SAMPLE = """
() => {
  const p = window.__probe; const lag = p.maxLag; p.maxLag = 0;
  const f = window.kuzetFeed;
  const st = f ? f.stats() : {received: 0, cards: 0, kept: 0};
  const lat = [];
  const since = Date.now() - 1000;
  if (f) for (const d of f.incidents.values())
    if (d.rx_ms && d.detection_state === 'start' && d.rx_ms > since) lat.push(d.rx_ms - d.started_at_ms);
  return {dom: document.getElementsByTagName('*').length, lag, lat, ...st};
}
"""


DRAINED = """
async () => {
  const page = await (await fetch('/api/incidents?limit=1')).json();
  const seen = window.__ledger.reduce((m, e) => Math.max(m, e[2]), 0);
  return [page.rev, seen];
}
"""


def serve(args: argparse.Namespace) -> None:
    """The console server process (so its memory is measured alone)."""
    import uvicorn

    from dispatch.app import create_app
    from dispatch.settings import ConsoleSettings

    bus: dict[str, Any] = {"kind": "local", "local_path": args.bus}
    if args.kafka:
        bus = {"kind": "kafka", "kafka": {"bootstrap_servers": args.kafka}}
    settings = ConsoleSettings(
        database=args.db, bus=bus, consumer_group=args.group, max_cards=args.max_cards, cookie_secure=False
    )
    uvicorn.run(create_app(settings), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


def _end_of(inc: Any) -> Any:
    from dispatch.testing import make_incident

    return make_incident(incident_id=inc.incident_id, camera_id=inc.camera_id, state="end", seq=1,
                         started_at=inc.started_at, severity=inc.severity)  # fmt: skip


def account(sent: list[tuple[str, str, int]], ledger: list[list[Any]]) -> dict[str, Any]:
    """Every sent event by id: delivered once, superseded (the page got a newer state of the same incident
    instead), duplicated, or missing. A card carries the seq of the newest event it reflects."""
    got: dict[tuple[str, int], int] = {}
    newest: dict[str, int] = {}
    for iid, seq, _rev in ledger:
        got[(iid, int(seq))] = got.get((iid, int(seq)), 0) + 1
        newest[iid] = max(newest.get(iid, -1), int(seq))
    once = superseded = duplicated = 0
    missing: list[str] = []
    for event_id, iid, seq in sent:
        n = got.get((iid, seq), 0)
        if n == 1:
            once += 1
        elif n > 1:
            duplicated += 1
        elif newest.get(iid, -1) > seq:
            superseded += 1
        else:
            missing.append(event_id)
    return {
        "events_sent": len(sent),
        "distinct_event_ids": len({e for e, _, _ in sent}),
        "delivered_once": once,
        "superseded_by_newer_state": superseded,
        "duplicated": duplicated,
        "missing": len(missing),
        "missing_event_ids_first": missing[:20],
        "updates_on_the_wire": len(ledger),
    }


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from benchmarks.console_process import bench_publisher, wait_healthy
    from dispatch.testing import FAST_HASHER, PASSWORDS, add_standard_users, free_port, make_incident, record_of
    from storage.workflow import open_workflow_store

    work = Path(tempfile.mkdtemp(prefix="kuzet-console-load-"))
    db, bus = str(work / "console.sqlite3"), str(work / "bus.sqlite3")
    store = open_workflow_store(db, hasher=FAST_HASHER)
    add_standard_users(store)
    store.close()
    port = free_port()
    group = f"console-load-{uuid.uuid4().hex[:6]}"
    cmd = [sys.executable, "-m", "benchmarks.console_load", "--serve", "--db", db, "--bus", bus, "--port", str(port),
           "--group", group, "--max-cards", str(args.max_cards)]  # fmt: skip
    cmd += ["--kafka", args.kafka] if args.kafka else []
    server = subprocess.Popen(cmd, cwd=ROOT)
    publisher = bench_publisher(args.kafka, bus, "console-load")
    url = f"http://127.0.0.1:{port}"
    samples: list[dict[str, Any]] = []
    try:
        wait_healthy(url, 30)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            page.add_init_script(PROBE)
            page.goto(f"{url}/login")
            page.fill("input[name=username]", "dispatcher")
            page.fill("input[name=password]", PASSWORDS["dispatcher"])
            page.click("button[type=submit]")
            page.wait_for_url(f"{url}/feed")
            page.wait_for_selector('#conn[data-state="live"]')
            time.sleep(2 if not args.kafka else 6)  # let a Kafka consumer group settle
            counter = {"produced": 0, "ends_pending_at_stop": 0}
            sent: list[tuple[str, str, int]] = []  # (event_id, incident_id, seq) of every acknowledged record
            stop = threading.Event()
            failure: list[BaseException] = []
            t0 = time.monotonic()
            cpu0 = cpu_s(server.pid)

            def produce() -> None:
                """Paced producer in its own thread, so sampling the page never slows the load down."""
                pending_end: deque[tuple[float, Any]] = deque()
                tick = 0.05
                try:
                    while not stop.is_set():
                        now = time.monotonic()
                        due = int(args.rate * (now - t0))  # paced by the clock: a slow loop catches up
                        batch = []
                        while counter["produced"] < due:
                            n = counter["produced"]
                            inc = make_incident(camera_id=f"load-{n % 500}", started_at=datetime.now(UTC),
                                                severity=("low", "medium", "high", "critical")[n % 4])  # fmt: skip
                            batch.append(record_of(inc))
                            pending_end.append((now + 2.0, inc))
                            counter["produced"] = n + 1
                        while pending_end and pending_end[0][0] <= now:
                            _, inc = pending_end.popleft()
                            batch.append(record_of(_end_of(inc)))
                        send(batch)
                        time.sleep(max(0.0, tick - (time.monotonic() - now)))
                    # The old run stopped here and still counted the ends of the last 2 s as sent (~400 of the
                    # "401 missing" updates): those incidents' ends are sent now, so every incident ends.
                    counter["ends_pending_at_stop"] = len(pending_end)
                    send([record_of(_end_of(inc)) for _, inc in pending_end])
                except BaseException as exc:
                    failure.append(exc)

            def send(batch: list[Any]) -> None:
                if not batch:
                    return
                errors = [r for r in publisher.publish(batch) if r is not None]
                if errors:
                    raise RuntimeError(f"publish failed: {errors[0]}")
                for rec in batch:
                    doc = json.loads(rec.value)
                    sent.append((doc["event_id"], doc["incident_id"], int(doc["seq"])))

            producer = threading.Thread(target=produce, daemon=True)
            producer.start()
            next_sample = t0 + 1
            while time.monotonic() - t0 < args.seconds:
                time.sleep(max(0.0, next_sample - time.monotonic()))
                next_sample += 1
                rt0 = time.monotonic()
                s = page.evaluate(SAMPLE)
                s["roundtrip_ms"] = (time.monotonic() - rt0) * 1000
                s["t"] = round(time.monotonic() - t0, 1)
                s["produced"] = counter["produced"]
                s["rss_mb"] = rss_kb(server.pid) / 1024
                s["server_cpu_s"] = cpu_s(server.pid) - cpu0
                s["loadavg_1m"] = os.getloadavg()[0]
                samples.append(s)
            stop.set()
            producer.join(10)
            if failure:
                raise failure[0]
            produced = counter["produced"]
            drain_until = time.monotonic() + 300
            last, still = None, 0
            while still < 5 and time.monotonic() < drain_until:
                # drained: the store's revision is stable for 5 s and the page has seen it (a loaded box can be
                # tens of seconds behind when the producer stops)
                time.sleep(1)
                state = page.evaluate(DRAINED)
                still = still + 1 if state == last and state[0] == state[1] else 0
                last = state
            final = page.evaluate(SAMPLE)
            final["ledger"] = page.evaluate("() => window.__ledger")
            final["resets"] = page.evaluate("() => window.__resets")
            final["delivery"] = account(sent, final["ledger"])
            final["ends_pending_at_stop"] = counter["ends_pending_at_stop"]
            browser.close()
    finally:
        publisher.close()
        server.terminate()
        server.wait(10)
    return summarise(args, samples, produced, final, work)


def summarise(args: argparse.Namespace, samples: list[dict[str, Any]], produced: int, final: dict[str, Any],
              work: Path) -> dict[str, Any]:  # fmt: skip
    third = max(1, len(samples) // 3)
    rss_mid = statistics.mean(s["rss_mb"] for s in samples[third : 2 * third])
    rss_end = statistics.mean(s["rss_mb"] for s in samples[-third:])
    lags = [s["lag"] for s in samples]
    lat = [v for s in samples for v in s["lat"]]
    result = {
        "rate_per_s": args.rate,
        "seconds": args.seconds,
        "bus": "kafka" if args.kafka else "local",
        "incidents_produced": produced,
        "events_produced": final["delivery"]["events_sent"],
        "updates_received_by_browser": final["received"],
        "delivery": final["delivery"],
        "ends_pending_at_stop": final["ends_pending_at_stop"],
        "resets": final["resets"],
        "max_cards": args.max_cards,
        "cards_max": max(s["cards"] for s in samples),
        "dom_elements_max": max(s["dom"] for s in samples),
        "dom_elements_first": samples[0]["dom"],
        "dom_elements_last": samples[-1]["dom"],
        "event_loop_stall_ms_p50": round(pct(lags, 0.5), 1),
        "event_loop_stall_ms_p95": round(pct(lags, 0.95), 1),
        "event_loop_stall_ms_max": round(max(lags), 1),
        "roundtrip_ms_p95": round(pct([s["roundtrip_ms"] for s in samples], 0.95), 1),
        "latency_ms_p50": round(pct(lat, 0.5), 1),
        "latency_ms_p95": round(pct(lat, 0.95), 1),
        "server_rss_mb_first": round(samples[0]["rss_mb"], 1),
        "server_rss_mb_middle_third": round(rss_mid, 1),
        "server_rss_mb_last_third": round(rss_end, 1),
        "server_rss_growth_pct": round(100 * (rss_end - rss_mid) / rss_mid, 1),
        "server_cpu_s": round(samples[-1]["server_cpu_s"], 1),
        "machine": f"{os.cpu_count()} CPUs (shared), {sys.platform}",
        "load_average_1m_mean": round(statistics.mean(s["loadavg_1m"] for s in samples), 1),
        "per_second": samples,
        "workdir": str(work),
    }
    result["dom_bounded"] = result["cards_max"] <= args.max_cards
    result["responsive"] = result["event_loop_stall_ms_p95"] < 250
    result["memory_flat"] = result["server_rss_growth_pct"] < 15
    result["every_event_accounted"] = result["delivery"]["missing"] == 0 and result["delivery"]["duplicated"] == 0
    return result


def print_table(r: dict[str, Any]) -> None:
    rows = [
        ("bus", r["bus"]),
        ("incidents produced (events)", f"{r['incidents_produced']} ({r['events_produced']}) in {r['seconds']} s"),
        ("updates received by the page", r["updates_received_by_browser"]),
        ("events: once / superseded / duplicated / missing", "{delivered_once} / {superseded_by_newer_state} / "
         "{duplicated} / {missing}".format(**r["delivery"])),
        ("ends that the old run never sent (now sent)", r["ends_pending_at_stop"]),
        ("cards shown, max (limit)", f"{r['cards_max']} ({r['max_cards']})"),
        ("DOM elements first / max / last", f"{r['dom_elements_first']} / {r['dom_elements_max']} / {r['dom_elements_last']}"),  # noqa: E501
        ("event-loop stall p50 / p95 / max", f"{r['event_loop_stall_ms_p50']} / {r['event_loop_stall_ms_p95']} / {r['event_loop_stall_ms_max']} ms"),  # noqa: E501
        ("scripted round trip p95", f"{r['roundtrip_ms_p95']} ms"),
        ("publish -> browser latency p50 / p95", f"{r['latency_ms_p50']} / {r['latency_ms_p95']} ms"),
        ("server RSS first / mid third / last third", f"{r['server_rss_mb_first']} / {r['server_rss_mb_middle_third']} / {r['server_rss_mb_last_third']} MB"),  # noqa: E501
        ("server RSS growth (last vs middle third)", f"{r['server_rss_growth_pct']} %"),
        ("server CPU", f"{r['server_cpu_s']} s"),
        ("DOM bounded / responsive / memory flat", f"{r['dom_bounded']} / {r['responsive']} / {r['memory_flat']}"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    print(f"console load: {r['rate_per_s']} incidents/s for {r['seconds']} s, {r['machine']}, "
          f"load average {r['load_average_1m_mean']}")  # fmt: skip
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=200.0, help="incidents per second")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--max-cards", type=int, default=150)
    p.add_argument("--kafka", default=None, help="bootstrap servers (default: the embedded local bus)")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--db", help=argparse.SUPPRESS)
    p.add_argument("--bus", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--group", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args)
        return
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print_table(result)
    print(f"wrote {args.out}")
    if not (
        result["dom_bounded"] and result["responsive"] and result["memory_flat"] and result["every_event_accounted"]
    ):
        sys.exit(1)


if __name__ == "__main__":
    main()
