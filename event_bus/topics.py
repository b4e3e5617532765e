"""Kafka topic names (DESIGN.md, "Kafka")."""

from __future__ import annotations

INCIDENTS = "kuzet.incidents.v1"
PLATES = "kuzet.plates.v1"
CAMERA_STATUS = "kuzet.camera-status.v1"
CAMERAS = "kuzet.cameras.v1"
DLQ = "kuzet.dlq.v1"
LINE_COUNTS = "kuzet.line-counts.v1"

ALL = (INCIDENTS, PLATES, CAMERA_STATUS, CAMERAS, DLQ, LINE_COUNTS)
