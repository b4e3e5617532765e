"""API fuzzing of the console in CI: every OpenAPI operation as every caller, a few generated requests each.

The full campaign (>10,000 requests) is ``python -m benchmarks.api_fuzz``; this is the same driver, shorter.
"""

from __future__ import annotations

from benchmarks.api_fuzz import CALLERS, run


def test_every_operation_as_every_role_no_5xx_no_role_leak() -> None:
    report = run(per_case=6, seed=1234)
    doc = report.to_json()
    assert doc["cases"] >= 15 * len(CALLERS)
    assert doc["min_requests_per_case"] >= 1
    assert report.server_errors == [], report.server_errors[:3]
    assert report.role_leaks == [], report.role_leaks[:3]
