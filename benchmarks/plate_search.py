"""Plate search as the history grows: 10 M -> 30 M -> 100 M reads over 90 day partitions, in one database.

    nice python -m benchmarks.plate_search [--dsn postgresql://...] [--sizes 10000000,30000000,100000000]
                                           [--queries 200] [--keep-free-gb 12] [--drop]

Without ``--dsn`` a throw-away cluster is started with the project's launcher
(``deploy/services/postgres.py``, the one the tests use) under
``var/bench/postgres``. The database grows in steps; at each step the missing
reads are generated inside PostgreSQL (``generate_series``, one INSERT per day
partition, spread evenly over ``DAYS`` = 90 days) for ``--vehicles`` distinct
plates read with a skewed frequency (a few vehicles pass cameras all day, most
a few times a month) on 2,000 cameras. Bulk generation drops the read
indexes and rebuilds them after the step (as a restore would; an index built
in one pass is a little denser than one grown by COPY batches, so disk per
read is a lower bound by a few per cent). The plate dictionary is rebuilt
from the reads. Then, at every size:

- ingest: 100k reads through the real path (``PostgresHistoryStore.insert``:
  COPY into staging, ``INSERT ... ON CONFLICT``, dictionary upsert), reads/s;
- disk: the plate tables and their indexes, per million reads;
- search: every query goes through :func:`storage.plates.search.search_plates`,
  the function the CLI and console use, so each timing includes the access
  check, validation, the audit insert (hash chain) and the store query.
  Queries are drawn from plates that exist; fuzzy queries are those plates
  with one or two characters changed (half the time an OCR confusion), and
  the share of fuzzy queries whose original plate came back is the recall.

Before each step the disk needed is estimated from the bytes per read so far;
the step is skipped (and the report says so) if it would leave less than
``--keep-free-gb`` free. Prints a table per size; writes
``artifacts/benchmarks/plate_search.json`` and ``plate_search_growth.png``.

Why one module over 400 lines: one growth run whose steps (generate, ingest, measure, plot) share the
database, the disk budget and the report; split, none of them runs or reads alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
from psycopg import sql

from core.clock import FakeClock
from storage.audit import PostgresAuditLog
from storage.plates.postgres import PostgresHistoryStore, partition_name
from storage.plates.query import SearchQuery, parse_query
from storage.plates.search import Principal, search_plates
from storage.plates.store import PlateReadRecord
from storage.plates.text import DEFAULT_CONFUSIONS

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "artifacts" / "benchmarks" / "plate_search.json"
PNG = OUT.with_name("plate_search_growth.png")
DAYS = 90
END = datetime(2026, 3, 31, tzinfo=UTC)  # fixed, so runs are comparable; "now" of every query
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
SIZES = (10_000_000, 30_000_000, 100_000_000)

# plate of vehicle number v (x = a hash of v): 3 digits, 3 letters, 2-digit region, e.g. 123ABC07
_PLATE_SQL = (
    "lpad((x %% 1000)::text, 3, '0') || chr(65 + ((x / 1000) %% 26)::int) || chr(65 + ((x / 26000) %% 26)::int) "
    "|| chr(65 + ((x / 676000) %% 26)::int) || lpad((1 + (x / 17576000) %% 20)::text, 2, '0')"
)
_GENERATE = (
    "INSERT INTO {} (event_id, observed_at, camera_id, plate, raw_text, country, plate_format, "
    "confidence, is_candidate) "
    "SELECT gen_random_uuid(), %(day)s::timestamptz + (g::float8 / %(n)s) * interval '1 day', "
    "'cam-' || lpad(floor(random() * 2000)::int::text, 4, '0'), p, p, 'KZ', 'kz-2012', 0.5 + random() * 0.5, false "
    f"FROM (SELECT g, {_PLATE_SQL} AS p FROM (SELECT g, (floor(%(v)s * power(random(), 2))::bigint * 2654435761) "
    "%% 4294967291 AS x FROM generate_series(0, %(n)s - 1) g) s0) s"
)
_DROP_INDEXES = (
    "ALTER TABLE plate_reads DROP CONSTRAINT IF EXISTS plate_reads_pkey",
    "DROP INDEX IF EXISTS plate_reads_plate_time",
    "DROP INDEX IF EXISTS plate_reads_camera_time",
)
_ADD_PKEY = "ALTER TABLE plate_reads ADD PRIMARY KEY (event_id, observed_at)"
_PLATE_TABLES = (
    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c WHERE c.relkind = 'r' "
    "AND (c.relname LIKE 'plate\\_reads\\_p%' OR c.relname = 'plate_dictionary')"
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def start_cluster() -> tuple[str, Any]:
    from deploy.services.postgres import PostgresService

    service = PostgresService(ROOT / "var" / "bench" / "postgres")
    service.start()
    return str(service.dsn), service


def ensure_db(admin_dsn: str, name: str, fresh: bool) -> str:
    with psycopg.connect(admin_dsn, autocommit=True) as c:
        exists = c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and fresh:
            c.execute(f"DROP DATABASE {name} WITH (FORCE)")
            exists = None
        if not exists:
            c.execute(f"CREATE DATABASE {name}")
    return admin_dsn.rsplit("/", 1)[0] + f"/{name}"


def drop_db(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def plate_bytes(c: psycopg.Connection[Any]) -> int:
    row = c.execute(_PLATE_TABLES).fetchone()
    return int(row[0]) if row else 0


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def day_counts(c: psycopg.Connection[Any], days: list[datetime]) -> list[int]:
    """Reads in each of these day partitions."""
    out = []
    for day in days:
        row = c.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(partition_name(day.date())))
        ).fetchone()
        out.append(int(row[0]) if row else 0)
    return out


def grow(dsn: str, target: int, vehicles: int, window_days: int = DAYS) -> dict[str, Any]:
    """Fill the last ``window_days`` day partitions up to ``target / DAYS`` reads each.

    With ``window_days == DAYS`` the table holds ``target`` reads over 90 days. A smaller window gives the
    newest days (the only ones a search can touch: ranges are capped at 31 days) the density of ``target``.
    """
    store = PostgresHistoryStore(dsn, statement_timeout_ms=0)
    store.migrate()
    start = END - timedelta(days=DAYS)
    store.ensure_partitions(start, days_ahead=DAYS + 1)
    store.close()
    days = [start + timedelta(days=d) for d in range(DAYS - window_days, DAYS)]
    per_day_target = target // DAYS
    with psycopg.connect(dsn, autocommit=True) as c:
        row = c.execute("SELECT count(*) FROM plate_reads").fetchone()
        have = int(row[0]) if row else 0
        missing = [max(0, per_day_target - n) for n in day_counts(c, days)]
        if sum(missing) < len(days):
            print(f"  reusing {have:,} reads", flush=True)
            return {"generated": 0, "rows_before": have}
        c.execute("SET maintenance_work_mem = '256MB'")
        t0 = time.perf_counter()
        whole = window_days >= DAYS
        if whole:  # every partition grows: drop the read indexes once and build them once at the end
            for statement in _DROP_INDEXES:
                c.execute(statement)
        for d, (day, n) in enumerate(zip(days, missing, strict=True)):
            if n > 0:
                table = partition_name(day.date())
                if not whole:  # only some partitions grow: detach each, load it bare, attach (builds its indexes)
                    c.execute(sql.SQL("ALTER TABLE plate_reads DETACH PARTITION {}").format(sql.Identifier(table)))
                    c.execute(
                        sql.SQL("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}").format(
                            sql.Identifier(table), sql.Identifier(f"{table}_pkey")
                        )
                    )
                    for (index,) in c.execute(
                        "SELECT indexname FROM pg_indexes WHERE tablename = %s", (table,)
                    ).fetchall():
                        c.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index)))
                c.execute(sql.SQL(_GENERATE).format(sql.Identifier(table)), {"day": day, "n": n, "v": vehicles})
                if not whole:
                    c.execute(
                        sql.SQL("ALTER TABLE plate_reads ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                            sql.Identifier(table), sql.Literal(day), sql.Literal(day + timedelta(days=1))
                        )
                    )
            if d % 10 == 9:
                print(
                    f"  day {d + 1:2d}/{len(days)}: +{sum(missing[: d + 1]):,} reads, {time.perf_counter() - t0:.0f}s",
                    flush=True,
                )
        load_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        if whole:
            c.execute(_ADD_PKEY)
            store = PostgresHistoryStore(dsn, statement_timeout_ms=0)
            store.migrate()  # re-creates the plate and camera indexes on every partition
            store.close()
        index_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        # the dictionary from the grown days (for the whole window: every read)
        c.execute(
            "INSERT INTO plate_dictionary (plate, plate_folded, first_seen, last_seen) "
            "SELECT plate, translate(plate, 'BIOSZ', '81052'), min(observed_at), max(observed_at) "
            "FROM plate_reads WHERE observed_at >= %s GROUP BY plate ON CONFLICT (plate) DO UPDATE SET "
            "first_seen = LEAST(plate_dictionary.first_seen, EXCLUDED.first_seen), "
            "last_seen = GREATEST(plate_dictionary.last_seen, EXCLUDED.last_seen)",
            (days[0],),
        )
        c.execute("VACUUM ANALYZE plate_dictionary")
        c.execute("ANALYZE plate_reads")
        dict_s = time.perf_counter() - t2
    added = sum(missing)
    return {
        "rows_before": have,
        "window_days": window_days,
        "generated": added,
        "insert_s": round(load_s, 1),
        "insert_rows_per_s": round(added / load_s),
        "index_build_s": round(index_s, 1),  # window < 90 days: inside insert_s (attach)
        "dictionary_and_analyze_s": round(dict_s, 1),
    }


def ingest_copy(dsn: str, n: int = 100_000, batch: int = 5000) -> dict[str, Any]:
    """The real ingest path: PostgresHistoryStore.insert (COPY into staging, INSERT ... ON CONFLICT, dictionary)."""
    store = PostgresHistoryStore(dsn)
    rng = random.Random(3 + n)
    t_total = 0.0
    stored = 0
    batches: list[float] = []
    reads: list[PlateReadRecord] = []
    for b in range(n // batch):
        reads = []
        for i in range(batch):
            plate = f"{rng.randrange(1000):03d}" + "".join(rng.choice(LETTERS) for _ in range(3)) + "07"
            at = END - timedelta(seconds=(b * batch + i) * 0.01 + 1)
            reads.append(PlateReadRecord(uuid4(), at, f"cam-{rng.randrange(2000):04d}", plate, 0.9))
        t0 = time.perf_counter()
        stored += store.insert(reads)
        batches.append(time.perf_counter() - t0)
    t_total = sum(batches)
    again0 = time.perf_counter()
    dup = store.insert(reads)
    dup_s = time.perf_counter() - again0
    store.close()
    return {
        "rows": stored,
        "batch": batch,
        "rows_per_s": round(stored / t_total),
        "batch_p50_ms": round(statistics.median(batches) * 1000, 1),
        "duplicate_batch_stored": dup,
        "duplicate_batch_ms": round(dup_s * 1000, 1),
    }


def mutate(plate: str, rng: random.Random, edits: int) -> str:
    confusion = {a: b for x, y in DEFAULT_CONFUSIONS for a, b in ((x, y), (y, x))}
    chars = list(plate)
    for _ in range(edits):
        positions = [i for i, c in enumerate(chars) if c in confusion]
        if positions and rng.random() < 0.5:
            i = rng.choice(positions)
            chars[i] = confusion[chars[i]]
        else:
            i = rng.randrange(len(chars))
            pool = "0123456789" if chars[i].isdigit() else LETTERS
            chars[i] = rng.choice([c for c in pool if c != chars[i]])
    return "".join(chars)


def sched_ns(pids: list[int]) -> tuple[int, int]:
    """(ns on a CPU, ns waiting for one) of this thread and the given processes (/proc/*/schedstat).

    On a box shared by many jobs a query's wall time is mostly waiting for a core; the run-queue wait says how much,
    and CPU time is the query's work, which the load does not change.
    """
    run = wait = 0
    for path in ["/proc/thread-self/schedstat", *(f"/proc/{pid}/schedstat" for pid in pids)]:
        try:
            fields = Path(path).read_text().split()
        except OSError:
            continue
        run, wait = run + int(fields[0]), wait + int(fields[1])
    return run, wait


def timed(
    n: int, make: Callable[[int], SearchQuery], run: Callable[[SearchQuery], Any], pids: list[int]
) -> tuple[list[tuple[float, float, float]], list[Any]]:
    """Per query: (wall ms, CPU ms of client + database backends, wall ms minus their run-queue wait)."""
    times, results = [], []
    for i in range(n):
        q = make(i)
        c0, w0 = sched_ns(pids)
        t0 = time.perf_counter()
        res = run(q)
        wall = (time.perf_counter() - t0) * 1000
        c1, w1 = sched_ns(pids)
        times.append((wall, (c1 - c0) / 1e6, max(0.0, wall - (w1 - w0) / 1e6)))
        results.append((q, res))
    return times, results


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def measure(dsn: str, queries: int) -> list[dict[str, Any]]:
    """p50/p95/p99 of each query kind through search_plates, at the database's current size."""
    with psycopg.connect(dsn) as c:
        sample = [
            r[0]
            for r in c.execute(
                "SELECT plate FROM plate_dictionary TABLESAMPLE SYSTEM (1) REPEATABLE (42) "
                "WHERE last_seen >= %s LIMIT 2000",
                (END - timedelta(days=7),),
            ).fetchall()
        ]
        # the most-read plates of the newest day (commuters, taxis): their reads grow with the history
        hot = [
            r[0]
            for r in c.execute(
                sql.SQL("SELECT plate FROM {} GROUP BY plate ORDER BY count(*) DESC LIMIT 100").format(
                    sql.Identifier(partition_name((END - timedelta(days=1)).date()))
                )
            ).fetchall()
        ]
    history, audit = PostgresHistoryStore(dsn), PostgresAuditLog(dsn)
    audit.migrate()
    who = Principal("bench", "investigator")
    clock = FakeClock(END)
    rng = random.Random(11)

    # the two database sessions a search uses (store query, audit insert), for their CPU and run-queue time
    pids = [history._connection().info.backend_pid, audit.database.backend_pid()]

    def run(q: SearchQuery) -> Any:
        return search_plates(q, principal=who, reason="benchmark", store=history, audit=audit, clock=clock)

    origin: dict[str, str] = {}

    def pick() -> str:
        return str(rng.choice(sample))

    def one_wild(p: str) -> str:
        k = rng.randrange(len(p))
        return p[:k] + "?" + p[k + 1 :]

    def misread(edits: int, plates: list[str] | None = None) -> str:
        p = rng.choice(plates) if plates else pick()
        m = mutate(p, rng, edits)
        origin[m] = p
        return m

    week = {"since": END - timedelta(days=7), "until": END}
    month = {"since": END - timedelta(days=31), "until": END}  # the longest range a search may ask for
    suites: dict[str, Callable[[int], SearchQuery]] = {
        "exact (7 d)": lambda i: parse_query(text=pick(), **week),
        "exact (31 d)": lambda i: parse_query(text=pick(), **month),
        "wildcard ?23ABC02 (7 d)": lambda i: parse_query(text=one_wild(pick()), mode="wildcard", **week),
        "wildcard 123*02 (7 d)": lambda i: parse_query(text=(p := pick())[:3] + "*" + p[-2:], mode="wildcard", **week),
        "fuzzy d<=1 (7 d)": lambda i: parse_query(text=misread(1), mode="fuzzy", **week),
        "fuzzy d<=1 (31 d)": lambda i: parse_query(text=misread(1), mode="fuzzy", **month),
        "fuzzy d<=2 (7 d)": lambda i: parse_query(text=misread(2), mode="fuzzy", max_distance=2.0, **week),
        "fuzzy d<=2 (31 d)": lambda i: parse_query(text=misread(2), mode="fuzzy", max_distance=2.0, **month),
        "exact, most-read plates (31 d)": lambda i: parse_query(text=rng.choice(hot), **month),
        "fuzzy d<=1, most-read plates (31 d)": lambda i: parse_query(text=misread(1, hot), mode="fuzzy", **month),
    }
    for _ in range(20):  # warm the connection and caches
        run(parse_query(text=pick(), **week))
    table = []
    for name, make in suites.items():
        load = os.getloadavg()[0]
        samples, results = timed(queries, make, run, pids)
        times = [t for t, _, _ in samples]
        cpu = [c for _, c, _ in samples]
        unqueued = [u for _, _, u in samples]
        hits = [len(r.hits) for _, r in results]
        row: dict[str, Any] = {
            "query": name,
            "n": len(times),
            "p50_ms": round(pct(times, 50), 1),
            "p95_ms": round(pct(times, 95), 1),
            "p99_ms": round(pct(times, 99), 1),
            "cpu_p50_ms": round(pct(cpu, 50), 1),
            "cpu_p95_ms": round(pct(cpu, 95), 1),
            "unqueued_p50_ms": round(pct(unqueued, 50), 1),
            "unqueued_p95_ms": round(pct(unqueued, 95), 1),
            "mean_hits": round(statistics.mean(hits), 1),
            "loadavg_1m": [round(load, 1), round(os.getloadavg()[0], 1)],
        }
        if name.startswith("fuzzy"):
            # the misread plate's true plate must be among the distinct plates returned (first page)
            found = [origin[q.text] in {h.plate for h in r.hits} for q, r in results]
            row["recall_first_page"] = round(sum(found) / len(found), 3)
        table.append(row)
        print(
            f"  {name:<26} p50 {row['p50_ms']:7.1f} p95 {row['p95_ms']:7.1f} ms | cpu p50 {row['cpu_p50_ms']:6.1f} "
            f"p95 {row['cpu_p95_ms']:6.1f} | unq p50 {row['unqueued_p50_ms']:6.1f} p95 {row['unqueued_p95_ms']:6.1f}"
            f" | load {load:.1f}",
            flush=True,
        )
    history.close()
    audit.close()
    return table


def plot(steps: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(15, 6))
    plans = list(dict.fromkeys(str(s.get("label") or "").split(":")[0] for s in steps))  # "A", "B": one line each
    styles = ["--", "-", ":", "-."]
    for ax, key, what in ((axes[0], "p95_ms", "p95 wall time"), (axes[1], "cpu_p95_ms", "p95 CPU time")):
        for k, plan in enumerate(plans):
            mine = [s for s in steps if str(s.get("label") or "").split(":")[0] == plan]
            for n, name in enumerate(r["query"] for r in mine[-1]["results"]):
                pts = [
                    (s.get("density_of_rows_over_90_days", s["rows"]) / 1e6, r[key])
                    for s in mine
                    for r in s["results"]
                    if r["query"] == name and r.get(key) is not None
                ]
                if pts:
                    ax.plot(
                        *zip(*pts, strict=True),
                        marker="o",
                        linestyle=styles[k % len(styles)],
                        color=f"C{n}",
                        label=f"{name} [{plan}]" if plan else name,
                    )
        ax.axhline(200, color="red", linestyle="--", linewidth=1, label="target p95 200 ms")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("reads (millions over 90 day partitions, or that density)")
        ax.set_ylabel(f"{what} per search_plates call (ms)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_title("wall time (box shared, load 15-33)")
    axes[1].set_title("CPU time, client + database (load-independent)")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(report: dict[str, Any]) -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    if report["steps"]:
        plot(report["steps"], PNG)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dsn", help="PostgreSQL admin DSN (default: start a cluster under var/bench/postgres)")
    ap.add_argument("--db", default="kuzet_plate_bench")
    ap.add_argument("--sizes", default=",".join(str(s) for s in SIZES), help="comma-separated read counts, rising")
    ap.add_argument("--vehicles", type=int, default=2_000_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--keep-free-gb", type=float, default=12.0, help="skip a step that would leave less disk free")
    ap.add_argument("--fresh", action="store_true", help="drop and regenerate the benchmark database")
    ap.add_argument("--drop", action="store_true", help="drop the benchmark database at the end")
    ap.add_argument(
        "--window-days",
        type=int,
        default=DAYS,
        help="fill only the newest N days to each size's density (searches reach back 31 days at most)",
    )
    ap.add_argument("--label", default="", help="a name for these steps in the report (e.g. the plan measured)")
    ap.add_argument("--append", action="store_true", help="keep the steps already in the JSON report")
    ap.add_argument("--ingest-reads", type=int, default=100_000, help="reads sent through store.insert per size")
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))

    service = None
    admin = args.dsn
    if admin is None:
        admin, service = start_cluster()
    data_path = Path(service.pgdata) if service is not None else ROOT
    report: dict[str, Any] = {
        "benchmark": "plate_search",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "note": "2-core VM shared with other engineers' jobs; PostgreSQL default shared_buffers (128 MB), "
            "fsync off (throw-away cluster); per-suite load average in each row",
        },
        "days": DAYS,
        "vehicles": args.vehicles,
        "target": "p95 < 200 ms for exact and fuzzy <= 1",
        "steps": [],
        "skipped": [],
    }
    if args.append and OUT.is_file():
        previous = json.loads(OUT.read_text())
        report["steps"], report["skipped"] = previous.get("steps", []), previous.get("skipped", [])
    try:
        dsn = ensure_db(admin, args.db, args.fresh)
        for size in sizes:
            with psycopg.connect(dsn) as c:
                have = c.execute("SELECT count(*) FROM pg_class WHERE relname = 'plate_reads'").fetchone()
                rows_now = int(c.execute("SELECT count(*) FROM plate_reads").fetchone()[0]) if have and have[0] else 0  # type: ignore[index]
                used = plate_bytes(c) if rows_now else 0
            per_read = used / rows_now if rows_now else 260.0
            # new reads (the window's share), + WAL and the index rebuild's sort files
            need = max(0, size * args.window_days // DAYS - rows_now * args.window_days // DAYS) * per_read * 1.15
            free = free_bytes(data_path)
            if free - need < args.keep_free_gb * 2**30:
                msg = (
                    f"{size:,}: needs ~{need / 2**30:.1f} GB ({per_read:.0f} B/read), {free / 2**30:.1f} GB free, "
                    f"would leave under {args.keep_free_gb} GB"
                )
                print("SKIP " + msg, flush=True)
                report["skipped"].append(msg)
                continue
            print(
                f"growing to the density of {size:,} reads over {DAYS} days on the newest {args.window_days} days "
                f"({need / 2**30:.1f} GB estimated) ...",
                flush=True,
            )
            gen = grow(dsn, size, args.vehicles, args.window_days)
            print(f"  {gen}", flush=True)
            ingest = ingest_copy(dsn, args.ingest_reads)
            print(f"  ingest (COPY via store.insert): {ingest['rows_per_s']:,} reads/s", flush=True)
            with psycopg.connect(dsn) as c:
                total = int(c.execute("SELECT count(*) FROM plate_reads").fetchone()[0])  # type: ignore[index]
                distinct = int(c.execute("SELECT count(*) FROM plate_dictionary").fetchone()[0])  # type: ignore[index]
                used = plate_bytes(c)
                partitions = int(
                    c.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'plate_reads'::regclass").fetchone()[
                        0
                    ]
                )  # type: ignore[index]
            results = measure(dsn, args.queries)
            step: dict[str, Any] = {
                "label": args.label,
                "density_of_rows_over_90_days": size,
                "window_days": args.window_days,
                "rows": total,
                "distinct_plates": distinct,
                "partitions": partitions,
                "plate_tables_bytes": used,
                "bytes_per_read": round(used / total, 1),
                "gb_per_million_reads": round(used / total * 1e6 / 1e9, 3),
                "disk_free_gb": round(free_bytes(data_path) / 2**30, 1),
                "generation": gen,
                "ingest_copy": ingest,
                "results": results,
            }
            step["met"] = all(r["p95_ms"] < 200 for r in results if r["query"].startswith(("exact", "fuzzy d<=1")))
            report["steps"].append(step)
            write(report)
            print(
                f"{total:,} reads, {distinct:,} plates, {used / 2**30:.2f} GiB ({step['bytes_per_read']} B/read); "
                f"target met: {step['met']}",
                flush=True,
            )
    finally:
        write(report)
        print(f"wrote {OUT} and {PNG}")
        if args.drop:
            drop_db(admin, args.db)
            print(f"dropped {args.db}")
        if service is not None:
            service.stop()


if __name__ == "__main__":
    main()
