"""The ``sim://`` camera URL: a simulated camera for control-plane tests and the city-scale benchmark.

A simulated camera produces no video; it reports connect / up / down on a
seeded random schedule of outages (:mod:`ingest.sim`), so one box can hold
thousands of cameras while the registry, assignment, status heartbeats,
metrics and ``kuzet status`` run for real. Workers refuse it unless
``ingest.simulation`` is true, so it never reaches production by accident.

Form: ``sim:///<name>?seed=7&mtbf_s=600&outage_s=20&connect_s=0.5`` (no host,
so host allow-lists do not apply; every parameter optional and bounded).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

SCHEME = "sim"
_BOUNDS = {
    "seed": (0.0, 2.0**31),
    "mtbf_s": (1.0, 86_400.0 * 365),
    "outage_s": (0.1, 86_400.0),
    "connect_s": (0.0, 60.0),
}


@dataclass(frozen=True, slots=True)
class SimSpec:
    """A simulated camera's schedule: mean time between outages, mean outage length, connect delay (seconds)."""

    seed: int = 0
    mtbf_s: float = 600.0
    outage_s: float = 20.0
    connect_s: float = 0.5


def is_sim_url(url: str) -> bool:
    return urlsplit(url).scheme == SCHEME


def parse_sim_url(url: str) -> SimSpec:
    """The schedule of a ``sim://`` URL; ValueError naming the bad part (unknown key, not a number, out of bounds)."""
    parts = urlsplit(url)
    if parts.scheme != SCHEME:
        raise ValueError(f"not a sim:// URL: scheme {parts.scheme!r}")
    if parts.netloc:
        raise ValueError("sim:// URLs have no host: write sim:///<name>?...")
    values: dict[str, float] = {}
    for key, raw in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query)):
        if key not in _BOUNDS:
            raise ValueError(f"sim:// parameter {key!r} is unknown; known: {', '.join(sorted(_BOUNDS))}")
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"sim:// parameter {key}={raw!r} is not a number") from None
        low, high = _BOUNDS[key]
        if not low <= value <= high:
            raise ValueError(f"sim:// parameter {key}={value:g} is outside [{low:g}, {high:g}]")
        values[key] = value
    default = SimSpec()
    return SimSpec(
        seed=int(values.get("seed", default.seed)),
        mtbf_s=values.get("mtbf_s", default.mtbf_s),
        outage_s=values.get("outage_s", default.outage_s),
        connect_s=values.get("connect_s", default.connect_s),
    )
