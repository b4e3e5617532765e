"""Camera board at city size: page load and filter response in Chromium, 200 cameras against 20,000.

``python -m benchmarks.camera_board`` runs, for each fleet size (``--sizes``,
default 200 and 20000, the small one is the baseline measured in the same run):

1. a console server in its own process (its memory is measured alone) on the
   embedded local bus, or on Kafka with ``--kafka HOST:PORT``;
2. the fleet's camera statuses (``benchmarks.board_fleet``) published to the
   status topic, exactly as workers send them; ingest time until the console's
   API counts every camera; then every third camera's line counts on the
   line-count topic, until the API shows the last of them (``--no-line-counts``:
   none, the board as it was before them, for a side-by-side run);
3. the board opened in Debian's Chromium (Playwright) ``--loads`` times: time
   from navigation start to the first page of rows drawn (in-page clock), DOM
   element count, JS heap (Chrome DevTools Protocol ``Performance.getMetrics``);
4. each filter (state, zone, worker, text, sort by last-frame age, next page)
   ``--repeats`` times: in-page time from the control's change to the rows for
   that query drawn, the API call alone (fetch, same filters), and the
   console's board index alone (``dispatch.camera_board``, in this process);
5. the console server's resident memory with the fleet loaded.

It prints a table with the 20,000 / 200 ratios and writes
``artifacts/benchmarks/camera_board.json``. No pass/fail: the figures go to
``docs/console.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.board_fleet import STALE_AFTER_S, Fleet, line_counts, make_fleet, publish
from benchmarks.console_process import bench_publisher, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "artifacts" / "benchmarks" / "camera_board.json"
PAGE = 100  # the board's page size (dispatch/static/cameras.js)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

# Records (in-page clock) when the board's rows for a query are drawn: the table's data-query changes.
PROBE = """
window.__drawn = [];
document.addEventListener('DOMContentLoaded', () => {
  const t = document.getElementById('cameras');
  new MutationObserver(() => window.__drawn.push([t.dataset.query, performance.now()]))
    .observe(t, {attributes: true, attributeFilter: ['data-query']});
});
"""

# Change one control the way a user does and time until the rows for the new query are drawn.
ACT = """
async ([kind, target, value]) => {
  const t = document.getElementById('cameras');
  const before = t.dataset.query;
  const t0 = performance.now();
  if (kind === 'select' || kind === 'input') {
    const el = document.querySelector(target);
    el.value = value;
    if (kind === 'select') el.dispatchEvent(new Event('change'));
    else document.getElementById('cam-filters').dispatchEvent(new Event('submit', {cancelable: true}));
  } else {
    document.querySelector(target).click();
  }
  await new Promise((resolve, reject) => {
    const obs = new MutationObserver(() => { if (t.dataset.query !== before) { obs.disconnect(); resolve(); } });
    obs.observe(t, {attributes: true, attributeFilter: ['data-query']});
    setTimeout(() => { obs.disconnect(); reject(new Error(`no rows drawn for ${kind} ${target}`)); }, 60000);
  });
  await new Promise((r) => requestAnimationFrame(() => r()));  // the rows are on screen
  return [performance.now() - t0, t.dataset.query, document.querySelectorAll('#cameras tbody tr').length];
}
"""

API_TIME = """
async (qs) => {
  const t0 = performance.now();
  const res = await fetch('/api/cameras?' + qs, {headers: {Accept: 'application/json'}});
  const body = await res.json();
  return [performance.now() - t0, body.matching];
}
"""


def serve(args: argparse.Namespace) -> None:
    """The console server process (so its memory is measured alone)."""
    import uvicorn

    from benchmarks.board_fleet import ZONES
    from dispatch.app import create_app
    from dispatch.settings import ConsoleSettings

    bus: dict[str, Any] = {"kind": "local", "local_path": args.bus}
    if args.kafka:
        bus = {"kind": "kafka", "kafka": {"bootstrap_servers": args.kafka}}
    settings = ConsoleSettings(
        database=args.db,
        bus=bus,
        consumer_group=args.group,
        cookie_secure=False,
        camera_groups={z: [f"{args.prefix}{z}-*"] for z in ZONES},
        camera_stale_after_s=STALE_AFTER_S,
    )
    uvicorn.run(create_app(settings), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def measure(n: int, args: argparse.Namespace, browser: Any) -> dict[str, Any]:
    """One fleet size: its own console process, database and bus."""
    import httpx

    from dispatch.testing import FAST_HASHER, PASSWORDS, add_standard_users, free_port
    from storage.workflow import open_workflow_store

    work = Path(tempfile.mkdtemp(prefix="kuzet-board-bench-"))
    db, bus = str(work / "console.sqlite3"), str(work / "bus.sqlite3")
    store = open_workflow_store(db, hasher=FAST_HASHER)
    add_standard_users(store)
    store.close()
    prefix = f"b{uuid.uuid4().hex[:6]}-"
    fleet = make_fleet(n, prefix)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "benchmarks.camera_board", "--serve", "--db", db, "--bus", bus, "--port", str(port),
           "--group", f"board-bench-{prefix}", "--prefix", prefix]  # fmt: skip
    cmd += ["--kafka", args.kafka] if args.kafka else []
    server = subprocess.Popen(cmd, cwd=ROOT)
    publisher = bench_publisher(args.kafka, bus, "board-bench")
    try:
        client = httpx.Client(base_url=url, timeout=30)
        wait_healthy(url, 60)
        assert client.post("/api/session", json={"username": "dispatcher", "password": PASSWORDS["dispatcher"]})
        time.sleep(6 if args.kafka else 1)  # a Kafka consumer group settles before its first poll
        rss_empty = rss_mb(server.pid)
        t0 = time.monotonic()
        publish(publisher, fleet.statuses)
        published_s = time.monotonic() - t0
        while client.get("/api/cameras", params={"q": prefix, "limit": 1}).json()["matching"] < n:
            if time.monotonic() - t0 > 600:
                raise RuntimeError("the console did not ingest the fleet in 10 minutes")
            time.sleep(0.2)
        ingest_s = time.monotonic() - t0
        print(f"{n} cameras: ingested in {ingest_s:.1f} s", file=sys.stderr)
        counted = line_counts(fleet) if args.line_counts else []
        t0 = time.monotonic()
        publish(publisher, counted)  # every third camera's row also draws its line counts
        while (
            counted
            and client.get("/api/cameras", params={"q": counted[-1].camera_id}).json()["items"][0]["line_counts"]
            is None
        ):
            if time.monotonic() - t0 > 300:
                raise RuntimeError("the console did not read the line counts in 5 minutes")
            time.sleep(0.2)
        line_counts_s = time.monotonic() - t0

        context = browser.new_context(viewport={"width": 1920, "height": 1080})
        page = context.new_page()
        page.add_init_script(PROBE)
        page.goto(f"{url}/login")
        page.fill("input[name=username]", "dispatcher")
        page.fill("input[name=password]", PASSWORDS["dispatcher"])
        page.click("button[type=submit]")
        page.wait_for_url(lambda u: "/login" not in u)
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        loads, doms, heaps = [], [], []
        for _ in range(args.loads):
            page.goto(f"{url}/cameras?q={prefix}")
            page.wait_for_function("() => window.__drawn && window.__drawn.length > 0", timeout=120_000)
            loads.append(page.evaluate("() => window.__drawn[0][1]"))
            doms.append(page.evaluate("() => document.getElementsByTagName('*').length"))
            metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
            heaps.append(metrics["JSHeapUsedSize"] / 1e6)
        print(f"{n} cameras: page loads {[round(v) for v in loads]} ms", file=sys.stderr)
        filters: dict[str, list[float]] = {}
        rows_shown: dict[str, int] = {}
        actions = [
            ("state=down", ("select", "#f-state", "down"), ("select", "#f-state", "")),
            ("zone=north", ("select", "#f-zone", "north"), ("select", "#f-zone", "")),
            ("worker", ("input", "#f-worker", fleet.worker(3)), ("input", "#f-worker", "")),
            ("text", ("input", "#f-q", f"{prefix}east-0012"), ("input", "#f-q", prefix)),
            ("sort by last-frame age", ("click", "#cameras th[data-key=last_frame_age]", ""),
             ("click", "#cameras th[data-key=state]", "")),
            ("next page", ("click", "#page-next", ""), ("click", "#page-prev", "")),
        ]  # fmt: skip
        if n <= PAGE:
            actions.pop()  # one page: nothing to page to
        for name, do, undo in actions:
            times = filters[name] = []
            for _ in range(args.repeats):
                ms, _q, rows = page.evaluate(ACT, list(do))
                times.append(ms)
                rows_shown[name] = rows
                page.evaluate(ACT, list(undo))
        api = {}
        for name, qs in [("all", f"q={prefix}&limit=100"), ("state=down", f"q={prefix}&state=down&limit=100"),
                         ("zone+worker", f"q={prefix}&zone=north&worker={fleet.worker(3)}&limit=100"),
                         ("sort by age", f"q={prefix}&sort=last_frame_age&order=desc&limit=100")]:  # fmt: skip
            api[name] = median([page.evaluate(API_TIME, qs)[0] for _ in range(args.repeats * 2)])
        rss_loaded = rss_mb(server.pid)
        context.close()
    finally:
        publisher.close()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:  # an SSE stream still open keeps uvicorn's graceful stop waiting
            server.kill()
            server.wait(10)
    return {
        "cameras": n,
        "publish_s": round(published_s, 2),
        "ingest_s": round(ingest_s, 2),
        "ingest_statuses_per_s": round(n / ingest_s),
        "line_count_cameras": len(counted),
        "line_counts_ingest_s": round(line_counts_s, 2),
        "page_load_ms_median": median(loads),
        "page_load_ms_all": [round(v, 1) for v in loads],
        "dom_elements": max(doms),
        "js_heap_mb": round(max(heaps), 1),
        "filter_ms_median": {k: median(v) for k, v in filters.items()},
        "filter_ms_all": {k: [round(x, 1) for x in v] for k, v in filters.items()},
        "filter_rows_shown": rows_shown,
        "api_ms_median": api,
        "index_ms_median": index_ms(fleet, args.repeats),
        "server_rss_mb_empty": round(rss_empty, 1),
        "server_rss_mb_loaded": round(rss_loaded, 1),
    }


def index_ms(fleet: Fleet, repeats: int) -> dict[str, float]:
    """The console's board index alone (no HTTP, no browser): one page per query, median ms.

    "... (no line counts)": the same index without the line-count store, so the cost of the Line counts column
    (a lookup per row of the page) shows as the ratio between the two in the same run.
    """
    from dispatch.bus_ingest import camera_health
    from dispatch.camera_board import BoardQuery, CameraBoard
    from dispatch.line_counts import LineCountBoard

    counts = LineCountBoard()
    counts.update(line_counts(fleet))
    board = CameraBoard(fleet.groups, int(STALE_AFTER_S * 1000), line_counts=counts)
    bare = CameraBoard(fleet.groups, int(STALE_AFTER_S * 1000))
    board.update([camera_health(s) for s in fleet.statuses])
    bare.update([camera_health(s) for s in fleet.statuses])
    now_ms = int(time.time() * 1000)
    queries = {
        "all": BoardQuery(),
        "state=down": BoardQuery(state="down"),
        "zone+worker": BoardQuery(group="north", worker=fleet.worker(3)),
        "text": BoardQuery(text=f"{fleet.prefix}east-0012"),
        "sort by age": BoardQuery(sort="last_frame_age", descending=True),
    }
    times: dict[str, list[float]] = {}
    for name, q in queries.items():
        pair = [(name, board)] + ([(f"{name} (no line counts)", bare)] if name in ("all", "sort by age") else [])
        for _ in range(repeats * 4):
            for label, index in pair:  # alternated, so load on the machine falls on both alike
                t0 = time.perf_counter()
                index.page(q, now_ms)
                times.setdefault(label, []).append((time.perf_counter() - t0) * 1000)
    return {name: round(statistics.median(v), 2) for name, v in times.items()}


def table(results: list[dict[str, Any]]) -> str:
    small, big = results[0], results[-1]
    rows: list[tuple[str, float, float]] = [
        ("page load, ms (median)", small["page_load_ms_median"], big["page_load_ms_median"]),
        *[(f"filter: {k}, ms", small["filter_ms_median"].get(k, 0.0), v) for k, v in big["filter_ms_median"].items()],
        *[(f"API alone: {k}, ms", small["api_ms_median"][k], v) for k, v in big["api_ms_median"].items()],
        *[(f"index alone: {k}, ms", small["index_ms_median"][k], v) for k, v in big["index_ms_median"].items()],
        ("DOM elements", small["dom_elements"], big["dom_elements"]),
        ("JS heap, MB", small["js_heap_mb"], big["js_heap_mb"]),
        ("console RSS with fleet, MB", small["server_rss_mb_loaded"], big["server_rss_mb_loaded"]),
        ("ingest, statuses/s", small["ingest_statuses_per_s"], big["ingest_statuses_per_s"]),
        ("line counts read until shown, s", small["line_counts_ingest_s"], big["line_counts_ingest_s"]),
    ]
    width = max(len(r[0]) for r in rows)
    out = [f"{'':{width}}  {small['cameras']:>10,}  {big['cameras']:>10,}  {'ratio':>7}"]
    for name, a, b in rows:
        out.append(f"{name:{width}}  {a:>10,.2f}  {b:>10,.2f}  {b / a if a else float('nan'):>7.2f}")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[200, 20_000])
    p.add_argument("--loads", type=int, default=5, help="page loads per size")
    p.add_argument("--repeats", type=int, default=5, help="times each filter is applied")
    p.add_argument("--kafka", default="", help="HOST:PORT of a Kafka broker (default: the embedded local bus)")
    p.add_argument(
        "--no-line-counts", dest="line_counts", action="store_false", help="no line counts (the board before them)"
    )
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    for name in ("--db", "--bus", "--group", "--prefix"):
        p.add_argument(name, default="", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args)
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        results = [measure(n, args, browser) for n in sorted(args.sizes)]
        browser.close()
    report = {
        "benchmark": "camera_board",
        "bus": "kafka" if args.kafka else "local",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "loadavg_1m": os.getloadavg()[0]},
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(table(results))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
