"""API fuzzing of the console: every OpenAPI operation, as every role, with generated requests (Hypothesis).

``python -m benchmarks.api_fuzz`` runs the full campaign (``--per-case 130``:
about 130 requests for each of ~20 operations x 4 callers = >10,000) against a
console served on loopback (real sockets, so the SSE feed is exercised too)
and writes ``artifacts/benchmarks/api_fuzz.json``. The CI test
(``tests/unit/test_console_api_fuzz.py``) runs the same driver with a few
requests per case.

Requests come from the console's own OpenAPI document: path and query
parameters and JSON bodies drawn from their JSON Schemas
(``hypothesis-jsonschema``), mixed with malformed input: junk bodies, wrong
content types, random extra query parameters, oversized and non-ASCII text,
and known ids so some requests reach real rows. Callers are anonymous and one
bearer token per role. Two properties are checked on every response:

* **no 5xx**: any input is a clear 4xx at worst;
* **no role leak**: a caller whose role the route does not name gets 401/403
  (or a routing-level 404/405, or 413 from the body limit) and nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "artifacts" / "benchmarks" / "api_fuzz.json"
CALLERS = ("anonymous", "dispatcher", "investigator", "admin")
NOT_LEAKS = frozenset({401, 403, 404, 405, 413})
JUNK_BODIES = [b"", b"{", b"[]", b"null", b'{"a":' * 50, "\u0436\u20ac\ud7ff".encode(), b"\xff\xfe\x00", b"BIG"]
BIG = b"0" * 70_000  # sent for the b"BIG" junk body: over the body limit


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    roles: frozenset[str] | None  # None: public
    params: list[dict[str, Any]]
    body_schema: dict[str, Any] | None


@dataclass
class FuzzReport:
    requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    per_case: Counter[str] = field(default_factory=Counter)
    server_errors: list[dict[str, Any]] = field(default_factory=list)
    role_leaks: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "responses_5xx": len(self.server_errors),
            "role_leaks": len(self.role_leaks),
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "cases": len(self.per_case),
            "min_requests_per_case": min(self.per_case.values()) if self.per_case else 0,
            "requests_per_s": round(self.requests / self.seconds, 1) if self.seconds else None,
            "seconds": round(self.seconds, 1),
            "first_server_errors": self.server_errors[:10],
            "first_role_leaks": self.role_leaks[:10],
        }


def _access_of(app: Any) -> dict[tuple[str, str], frozenset[str] | None]:
    """(METHOD, path) -> roles the route's Access names (None: public), walking included routers."""
    from fastapi.routing import APIRoute

    from dispatch.security import Access

    out: dict[tuple[str, str], frozenset[str] | None] = {}

    def walk(items: Any, prefix: str) -> None:
        for item in items:
            if isinstance(item, APIRoute):
                deps = [d.call for d in item.dependant.dependencies if isinstance(d.call, Access)]
                access = deps[0] if deps else None
                roles = None if access is None or access.public else frozenset(r.value for r in access.roles)
                for m in item.methods:
                    out[(m, prefix + item.path)] = roles
            elif hasattr(item, "original_router"):
                walk(item.original_router.routes, prefix + item.include_context.prefix)
            elif hasattr(item, "routes"):
                walk(item.routes, prefix + getattr(item, "path", ""))

    walk(app.routes, "")
    return out


def operations(app: Any) -> list[Operation]:
    """Every operation of the app's OpenAPI document, with the roles its route declares."""
    doc = app.openapi()
    access = _access_of(app)
    ops = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                continue
            body = None
            content = (op.get("requestBody") or {}).get("content", {})
            if "application/json" in content:
                body = content["application/json"]["schema"]
            roles = access.get((method.upper(), path), frozenset({"nobody"}))
            ops.append(Operation(method.upper(), path, roles, op.get("parameters", []), body))
    return ops


def from_schema(schema: dict[str, Any], components: dict[str, Any], depth: int = 0) -> Any:
    """A Hypothesis strategy for the JSON Schema subset FastAPI's OpenAPI document uses ($ref, anyOf, enum,
    const, object, array, string with length/pattern/format, integer/number with bounds, boolean, null)."""
    from hypothesis import strategies as st

    if depth > 8:
        return st.none()
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return from_schema(components.get("schemas", {}).get(name, {}), components, depth + 1)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([from_schema(s, components, depth + 1) for s in schema[key]])
    if schema.get("allOf"):
        return from_schema(schema["allOf"][0], components, depth + 1)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([from_schema({**schema, "type": k}, components, depth + 1) for k in kind])
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        fixed = {k: from_schema(v, components, depth + 1) for k, v in props.items() if k in required}
        optional = {k: from_schema(v, components, depth + 1) for k, v in props.items() if k not in required}
        return st.fixed_dictionaries(fixed, optional=optional)
    if kind == "array":
        items = from_schema(schema.get("items", {}), components, depth + 1)
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 5), 5))
    if kind == "string":
        if schema.get("format") == "date-time":
            return st.datetimes(timezones=st.sampled_from([UTC, None])).map(lambda d: d.isoformat())
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        lo, hi = schema.get("minLength", 0), schema.get("maxLength", 80)
        return st.text(min_size=lo, max_size=max(lo, min(hi, 80)))
    if kind == "integer":
        return st.integers(min_value=schema.get("minimum"), max_value=schema.get("maximum"))
    if kind == "number":
        return st.floats(min_value=schema.get("minimum"), max_value=schema.get("maximum"), allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return st.none() | st.integers() | st.text(max_size=20)


def request_strategy(op: Operation, components: dict[str, Any], known_ids: list[str]) -> Any:
    """A Hypothesis strategy of (path, query, body bytes | None, content type) for one operation."""
    from hypothesis import strategies as st

    def schema_values(schema: dict[str, Any]) -> Any:
        return from_schema(schema, components)

    text = st.text(max_size=80) | st.sampled_from(["", "0", "-1", "1e309", "null", "../../etc/passwd", "' OR 1=1--"])
    path_parts: dict[str, Any] = {}
    query_parts: dict[str, Any] = {}
    for p in op.params:
        where, name = p.get("in"), p["name"]
        values = schema_values(p.get("schema", {})) | text
        if where == "path":
            path_parts[name] = values | st.sampled_from(known_ids) if known_ids else values
        elif where == "query":
            query_parts[name] = st.none() | values | st.lists(text, max_size=3)
    extra_query = st.dictionaries(st.text(min_size=1, max_size=12), text, max_size=3)
    if op.body_schema is not None:
        valid = schema_values(op.body_schema).map(lambda v: (json.dumps(v).encode(), "application/json"))
        junk = st.sampled_from(JUNK_BODIES).map(lambda b: (b, "application/json"))
        form = st.binary(max_size=200).map(lambda b: (b, "application/x-www-form-urlencoded"))
        body = st.one_of(valid, valid, valid, junk, form, st.none().map(lambda _: (None, None)))
    else:
        body = st.just((None, None)) | st.sampled_from(JUNK_BODIES[:4]).map(lambda b: (b, "application/json"))
    return st.tuples(st.fixed_dictionaries(path_parts), st.fixed_dictionaries(query_parts), extra_query, body)


def _query_pairs(query: dict[str, Any], extra: dict[str, str]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for k, v in query.items():
        if v is None:
            continue
        for item in v if isinstance(v, list) else [v]:
            pairs.append((k, item if isinstance(item, str) else json.dumps(item)))
    pairs.extend(extra.items())
    return pairs


def _fill(path: str, parts: dict[str, Any]) -> str:
    for k, v in parts.items():
        value = v if isinstance(v, str) else json.dumps(v)
        path = path.replace("{" + k + "}", quote(value, safe="") or "%20")
    return path


@dataclass
class Target:
    url: str
    tokens: dict[str, str | None]
    known_ids: list[str]
    close: Any


def start_console(work: Path) -> Target:
    """A console on loopback with one user and one API token per role, an incident, a watchlist entry."""
    from dispatch.app import create_app
    from dispatch.bus_ingest import detection_update
    from dispatch.settings import ConsoleSettings
    from dispatch.testing import FAST_HASHER, add_standard_users, make_incident, serve_in_thread
    from storage.workflow import open_workflow_store

    db = work / "console.sqlite3"
    store = open_workflow_store(db, hasher=FAST_HASHER)
    add_standard_users(store)
    inc = make_incident(type="watchlist_hit")
    store.ingest([detection_update(inc)])
    settings = ConsoleSettings(
        _env_file=None,  # type: ignore[call-arg]
        database=str(db),
        consume=False,
        cookie_secure=False,
        storage={"kind": "local", "local_dir": work / "snapshots"},
        heartbeat_s=0.2,
        session_recheck_s=0.2,
        login_address_attempts=10_000,
        audit_anchors={"log": False},
    )
    app = create_app(settings, store=store)
    tokens: dict[str, str | None] = {"anonymous": None}
    for role in CALLERS[1:]:
        tokens[role] = store.create_api_token(role, "fuzz")
    entry = app.state.console.plates.watch_add(
        user="admin", role="admin", plate="777AAA02", match="exact", reason="fuzz seed", expires_at_ms=None
    )
    served = serve_in_thread(app)

    def close() -> None:
        served.stop()
        store.close()

    return Target(served.url, tokens, [str(inc.incident_id), entry.id, str(uuid.uuid4())], close)


def send(client: Any, op: Operation, token: str | None, drawn: Any) -> tuple[int, str]:
    """One request; SSE and other streams are read for at most 64 KiB, then closed."""
    path_parts, query, extra, (body, ctype) = drawn
    body = BIG if body == b"BIG" else body
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if ctype:
        headers["Content-Type"] = ctype
    url = _fill(op.path, path_parts)
    with client.stream(op.method, url, params=_query_pairs(query, extra), content=body, headers=headers) as r:
        got = b""
        for chunk in r.iter_bytes():
            got += chunk
            if len(got) > 65536 or r.headers.get("content-type", "").startswith("text/event-stream"):
                break
        return r.status_code, got[:300].decode("utf-8", "replace")


def _run_case(
    client: Any, op: Operation, caller: str, token: str | None, strategy: Any, report: FuzzReport, n: int, seed: int
) -> None:
    """``n`` generated requests of one operation by one caller, each checked and counted."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed

    case = f"{op.method} {op.path} as {caller}"
    allowed = op.roles is None or (caller != "anonymous" and caller in op.roles)

    @hseed(seed)
    @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def one(drawn: Any) -> None:
        status, text = send(client, op, token, drawn)
        report.requests += 1
        report.by_status[status] += 1
        report.per_case[case] += 1
        where = {"case": case, "status": status, "body": text[:200], "request": repr(drawn)[:300]}
        if status >= 500:
            report.server_errors.append(where)
        routing_404 = status == 404 and '"Not Found"' in text
        if not allowed and (status not in NOT_LEAKS or (status == 404 and not routing_404)):
            report.role_leaks.append(where)

    one()


def fuzz(target: Target, app_ops: list[Operation], components: dict[str, Any], per_case: int, seed: int) -> FuzzReport:
    """Every operation as every caller, ``per_case`` requests each, against the served console."""
    import httpx

    report = FuzzReport()
    t0 = time.monotonic()
    with httpx.Client(base_url=target.url, timeout=30) as client:
        for op in app_ops:
            strategy = request_strategy(op, components, target.known_ids)
            for caller in CALLERS:
                _run_case(client, op, caller, target.tokens[caller], strategy, report, per_case, seed)
    report.seconds = time.monotonic() - t0
    return report


def run(per_case: int, seed: int | None = None) -> FuzzReport:
    from dispatch.app import create_app
    from dispatch.settings import ConsoleSettings

    seed = seed if seed is not None else random.randrange(2**32)
    with tempfile.TemporaryDirectory(prefix="kuzet-fuzz-") as tmp:
        work = Path(tmp)
        target = start_console(work)
        try:
            schema_app = create_app(
                ConsoleSettings(
                    _env_file=None,  # type: ignore[call-arg]
                    database=str(work / "schema.sqlite3"),
                    consume=False,
                    cookie_secure=False,
                    audit_anchors={"log": False},
                )
            )
            ops = operations(schema_app)
            components = schema_app.openapi().get("components", {})
            return fuzz(target, ops, components, per_case, seed)
        finally:
            target.close()


def iter_lines(report: FuzzReport) -> Iterator[str]:
    doc = report.to_json()
    yield f"API fuzz: {doc['requests']} requests over {doc['cases']} cases (operation x caller) in {doc['seconds']} s"
    yield f"  fewest requests in one case: {doc['min_requests_per_case']}"
    yield f"  by status: {doc['by_status']}"
    yield f"  5xx responses: {doc['responses_5xx']}    role leaks: {doc['role_leaks']}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-case", type=int, default=130, help="generated requests per operation and caller")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    report = run(args.per_case, args.seed)
    doc = report.to_json() | {"per_case_target": args.per_case, "machine": f"{os.cpu_count()} CPUs (shared)"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2))
    for line in iter_lines(report):
        print(line)
    print(f"wrote {args.out}")
    if doc["responses_5xx"] or doc["role_leaks"] or (doc["requests"] < 10_000 and args.per_case >= 130):
        sys.exit(1)


if __name__ == "__main__":
    main()
