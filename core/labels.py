"""Canonical labels: every backend's class map is translated onto these ids.

Rules, events and the console speak only these names, so swapping a model
(COCO, a one-class person model, a fire/smoke model) never changes a rule.
"""

from __future__ import annotations

from enum import IntEnum


class Label(IntEnum):
    PERSON = 0
    CAR = 1
    BUS = 2
    TRUCK = 3
    MOTORCYCLE = 4
    FIRE = 5
    SMOKE = 6
    LICENSE_PLATE = 7

    @property
    def slug(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, name: str) -> Label:
        """Label from its lower-case name; ValueError names the valid choices."""
        try:
            return cls[name.strip().upper()]
        except KeyError:
            valid = ", ".join(label.slug for label in cls)
            raise ValueError(f"unknown label {name!r}; valid labels: {valid}") from None


VEHICLES = frozenset({Label.CAR, Label.BUS, Label.TRUCK, Label.MOTORCYCLE})
