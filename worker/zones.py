"""Zones in frame pixels, and the vectorised "which boxes stand in which zone" test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import Polygon

from core.config import Zone
from core.detections import Detections


@dataclass(frozen=True)
class PixelZone:
    """A configured zone scaled to one stream's resolution (zones are stored normalised 0..1)."""

    name: str
    severity: str
    polygon: Polygon
    points: npt.NDArray[np.int32]

    @classmethod
    def from_config(cls, zone: Zone, width: int, height: int) -> PixelZone:
        pts = np.array([(x * width, y * height) for x, y in zone.polygon], dtype=np.float64)
        poly = Polygon(pts)
        shapely.prepare(poly)
        return cls(zone.name, zone.severity, poly, pts.round().astype(np.int32))

    def contains_feet(self, detections: Detections) -> npt.NDArray[np.bool_]:
        """Boxes whose bottom-centre (where a person stands) lies in the zone."""
        if len(detections) == 0:
            return np.zeros(0, dtype=bool)
        feet = detections.bottom_center
        return np.asarray(shapely.contains_xy(self.polygon, feet[:, 0], feet[:, 1]), dtype=bool)


def scale_zones(zones: list[Zone], width: int, height: int) -> list[PixelZone]:
    return [PixelZone.from_config(z, width, height) for z in zones]
