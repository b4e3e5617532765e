"""Tripwire geometry in frame pixels, and the per-track side test with a hysteresis band.

Why not ``supervision.LineZone`` (0.27): it takes one straight segment, not a
polyline; it decides a crossing from the four box corners (or chosen anchors)
all changing side, with a frame-count threshold against jitter rather than a
band in space; and it keeps no crossing time. Kuzet needs polylines along a
kerb or a doorway, a band so that a box wobbling on the line counts once, and
a sub-frame crossing time for section speed control. The geometry is a few
lines of numpy and shapely, so it lives here.

Side convention: standing on a polyline's first point facing the second, a
point on screen to the right has a positive signed distance (image y grows
downwards, so this is the sign of the 2-D cross product).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from shapely.geometry import LineString

F64 = npt.NDArray[np.float64]
Point = tuple[float, float]


@dataclass(frozen=True)
class Crossing:
    """One side change of one track: +1 when it went to the right side, -1 to the left; when, interpolated."""

    track: int
    to_side: int
    t: float
    point: Point


class PixelPolyline:
    """A polyline scaled to the frame, with a vectorised signed distance."""

    def __init__(self, points: list[Point], width: int, height: int) -> None:
        pts = np.array([(x * width, y * height) for x, y in points], dtype=np.float64)
        self.points = pts
        self.line = LineString(pts)
        self._a = pts[:-1]
        self._d = pts[1:] - pts[:-1]
        self._len2 = np.maximum((self._d**2).sum(axis=1), 1e-9)

    def signed_distance(self, xy: F64) -> F64:
        """Distance of each point to the nearest segment, signed by the side of that segment (N)."""
        if len(xy) == 0:
            return np.zeros(0, dtype=np.float64)
        rel = xy[:, None, :] - self._a[None, :, :]  # N×S×2
        u = np.clip((rel * self._d[None]).sum(axis=2) / self._len2[None], 0.0, 1.0)
        nearest = self._a[None] + u[..., None] * self._d[None]
        dist = np.hypot(*(xy[:, None, :] - nearest).transpose(2, 0, 1))
        cross = self._d[None, :, 0] * rel[..., 1] - self._d[None, :, 1] * rel[..., 0]
        seg = np.argmin(dist, axis=1)
        rows = np.arange(len(xy))
        sign = np.where(cross[rows, seg] >= 0, 1.0, -1.0)
        return np.asarray(dist[rows, seg] * sign, dtype=np.float64)

    def crossing_fraction(self, a: Point, b: Point) -> float | None:
        """Where along the path a -> b it meets the line (0..1), or None when it passes beside it."""
        path = LineString([a, b])
        hit = path.intersection(self.line)
        if hit.is_empty or path.length == 0:
            return None
        return float(path.project(hit.representative_point()) / path.length)


@dataclass
class _Side:
    side: int
    point: Point
    t: float
    last_t: float


@dataclass
class SideTracker:
    """Per track: the side it was last seen on outside the band; reports genuine crossings only.

    A point inside the band (|distance| <= band) never changes the committed
    side, so a track wobbling across the line by less than the band counts
    nothing; a crossing counts when the track is seen outside the band on the
    other side *and* its path from the last committed point meets the line
    (going round the end of a short line is no crossing).
    """

    line: PixelPolyline
    band_px: float
    forget_s: float = 10.0
    _tracks: dict[int, _Side] = field(default_factory=dict)

    def update(self, t: float, tracks: npt.NDArray[np.int64], xy: F64) -> list[Crossing]:
        out: list[Crossing] = []
        dist = self.line.signed_distance(xy)
        for track, (x, y), d in zip(tracks.tolist(), xy.tolist(), dist.tolist(), strict=True):
            prev = self._tracks.get(track)
            if prev is not None:
                prev.last_t = t
            if abs(d) <= self.band_px:
                continue
            side = 1 if d > 0 else -1
            if prev is None:
                self._tracks[track] = _Side(side, (x, y), t, t)
                continue
            if side != prev.side:
                frac = self.line.crossing_fraction(prev.point, (x, y))
                if frac is not None:
                    at_t = prev.t + frac * (t - prev.t)
                    px = prev.point[0] + frac * (x - prev.point[0])
                    py = prev.point[1] + frac * (y - prev.point[1])
                    out.append(Crossing(track, side, at_t, (px, py)))
            prev.side, prev.point, prev.t = side, (x, y), t
        self._tracks = {k: v for k, v in self._tracks.items() if t - v.last_t <= self.forget_s}
        return out

    def forget(self, track: int) -> None:
        self._tracks.pop(track, None)
