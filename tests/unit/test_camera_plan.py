"""The camera-level assignment plan (event_bus.kafka_group): capacity balance, stickiness, minimal moves, two phases.

Pure functions, no broker: the group test (tests/integration/test_camera_group.py) runs the same plan in
twelve worker processes.
"""

from __future__ import annotations

import random

from event_bus.kafka_group import (
    MemberInfo,
    cooperative_round,
    encode_member,
    minimum_moves,
    moved,
    parse_cameras,
    parse_member,
    plan_cameras,
    quotas,
)


def _cams(n: int, start: int = 0) -> list[str]:
    return [f"cam-{i:05d}" for i in range(start, start + n)]


def _owning(plan: dict[str, list[str]], caps: dict[str, int]) -> dict[str, MemberInfo]:
    return {m: MemberInfo(caps[m], frozenset(plan.get(m, []))) for m in caps}


def _city_caps() -> dict[str, int]:
    return {f"w{i:02d}": (1500 if i % 2 else 500) for i in range(20)}


def test_plan_balances_by_declared_capacity() -> None:
    caps = _city_caps()
    plan = plan_cameras(_cams(20_000), {m: MemberInfo(c) for m, c in caps.items()})
    assert sorted(c for cs in plan.values() for c in cs) == _cams(20_000), "every camera exactly once"
    for m, cs in plan.items():
        assert abs(len(cs) - 20_000 * caps[m] / sum(caps.values())) < 1, (m, len(cs))
    assert {len(cs) for m, cs in plan.items() if caps[m] == 500} == {500}
    assert {len(cs) for m, cs in plan.items() if caps[m] == 1500} == {1500}
    assert quotas(7, {"a": MemberInfo(1), "b": MemberInfo(1)}) == {"a": 4, "b": 3}


def test_adding_cameras_moves_no_running_camera() -> None:
    caps = _city_caps()
    before = plan_cameras(_cams(19_000), {m: MemberInfo(c) for m, c in caps.items()})
    members = _owning(before, caps)
    after = plan_cameras(_cams(20_000), members)
    assert moved(before, after) == 0 == minimum_moves(before, _cams(20_000), members)
    assert sorted(c for cs in after.values() for c in cs) == _cams(20_000)
    assert cooperative_round(after, members) == after, "new cameras go out in the first round"


def test_a_join_moves_only_the_excess_and_a_leave_only_the_leavers_cameras() -> None:
    caps = {"a": 100, "b": 100, "c": 200}
    cams = _cams(400)
    plan = plan_cameras(cams, {m: MemberInfo(c) for m, c in caps.items()})
    joined = _owning(plan, caps) | {"d": MemberInfo(200)}
    plan2 = plan_cameras(cams, joined)
    assert moved(plan, plan2) == minimum_moves(plan, cams, joined) == len(plan2["d"]) == 133, "only d's quota moves"
    assert all(set(plan2[m]) <= set(plan[m]) for m in caps)
    left = {m: MemberInfo(caps[m] if m != "d" else 200, frozenset(plan2[m])) for m in ("a", "b", "d")}
    plan3 = plan_cameras(cams, left)
    assert all(set(plan2[m]) <= set(plan3[m]) for m in left), "survivors keep every camera they had"
    assert moved(plan2, plan3) == len(plan2["c"]), "only the leaver's cameras move"


def test_removed_cameras_leave_and_balance_holds() -> None:
    caps = {"a": 10, "b": 10}
    plan = plan_cameras(_cams(20), {m: MemberInfo(c) for m, c in caps.items()})
    plan2 = plan_cameras(_cams(10), _owning(plan, caps))  # half the cameras removed: all of b's
    assert sorted(c for cs in plan2.values() for c in cs) == _cams(10)
    assert {len(cs) for cs in plan2.values()} == {5}
    assert moved(plan, plan2) == 5 == minimum_moves(plan, _cams(10), _owning(plan, caps))


def test_cooperative_round_holds_back_what_another_member_still_runs() -> None:
    members = {"a": MemberInfo(1, frozenset({"x", "y"})), "b": MemberInfo(1), "c": MemberInfo(1, frozenset({"z"}))}
    plan = {"a": ["x"], "b": ["y", "new"], "c": ["z"]}
    assert cooperative_round(plan, members) == {"a": ["x"], "b": ["new"], "c": ["z"]}
    # a camera two members claim (after a split) goes to neither until both have stopped it
    split = {"a": MemberInfo(1, frozenset({"x"})), "b": MemberInfo(1, frozenset({"x"}))}
    plan = plan_cameras(["x"], split)
    assert cooperative_round(plan, split) == {"a": [], "b": []}


def test_never_two_owners_across_random_rounds() -> None:
    rng = random.Random(12)
    running: dict[str, set[str]] = {}  # what each live member runs
    caps: dict[str, int] = {}
    cameras = set(_cams(300))
    next_member = 0
    for _round in range(200):
        event = rng.random()
        if event < 0.2 or not caps:
            caps[f"m{next_member}"] = rng.choice([5, 10, 30])
            running[f"m{next_member}"] = set()
            next_member += 1
        elif event < 0.3 and len(caps) > 1:
            gone = rng.choice(sorted(caps))
            del caps[gone], running[gone]  # expelled: its cameras are free (it fenced itself)
        elif event < 0.5:
            cameras |= set(_cams(rng.randint(1, 40), start=rng.randint(0, 600)))
        elif event < 0.6:
            cameras -= set(rng.sample(sorted(cameras), min(len(cameras), 20)))
        members = {m: MemberInfo(caps[m], frozenset(running[m])) for m in caps}
        given = cooperative_round(plan_cameras(cameras, members), members)
        for m, cams in given.items():
            for c in cams:
                others = [o for o in running if o != m and c in running[o]]
                assert not others, f"{c} given to {m} while {others} run it"
        for m in caps:  # each member stops what it lost and starts what it got
            running[m] = set(given[m])
        owners: dict[str, int] = {}
        for held in running.values():
            for c in held:
                owners[c] = owners.get(c, 0) + 1
        assert all(n == 1 for n in owners.values())
    # a few settling rounds with no change: everything placed, balanced to the quotas
    for _ in range(3):
        members = {m: MemberInfo(caps[m], frozenset(running[m])) for m in caps}
        given = cooperative_round(plan_cameras(cameras, members), members)
        running = {m: set(given[m]) for m in caps}
    assert sorted(c for cs in running.values() for c in cs) == sorted(cameras)
    q = quotas(len(cameras), {m: MemberInfo(caps[m]) for m in caps})
    assert {m: len(cs) for m, cs in running.items()} == q


def test_user_data_round_trip_and_garbage() -> None:
    info = parse_member(encode_member("w1", 500, {"b", "a"}))
    assert info == MemberInfo(500, frozenset({"a", "b"}), "w1")
    assert parse_member(b"\xff") == MemberInfo(1)
    assert parse_member(b'{"capacity": "x", "owned": 5}').owned == frozenset()
    assert parse_cameras(b'{"cameras": ["a", "b"]}') == ["a", "b"]
    assert parse_cameras(b"not json") == [] and parse_cameras(None) == []
