"""Generated poison records for every consumer's topic: the six kinds of bad input the issue names.

Each record is unique (a counter is part of its bytes), so a test can match
every dead letter to the one record it came from by the sha256 in its headers.

Kinds:

* ``deep``: JSON nested far past Python's recursion limit (``RecursionError`` in ``json.loads``);
* ``huge``: a ~360 KB object of 4-byte characters: bigger than the DLQ's value cap, and a JSON-escaped
  copy (the old dead-letter format) would pass the broker's 1 MiB limit;
* ``wrong_types``: the right fields with the wrong JSON types;
* ``wrong_version``: a well-formed event claiming ``schema_version`` 99;
* ``invalid_utf8``: bytes that are not UTF-8;
* ``null_key``: a well-formed event without a key (every event is keyed by its camera id).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from event_bus import topics

KINDS = ("deep", "huge", "wrong_types", "wrong_version", "invalid_utf8", "null_key")
HUGE_CHARS = 90_000
"""4-byte characters in a ``huge`` record: ~360 KB raw, ~1.08 MB once JSON-escaped (``\\ud83d\\ude00``)."""

T0 = datetime(2026, 1, 1, tzinfo=UTC)
Record = tuple[bytes | None, bytes]
"""(key, value) as produced to the topic."""


def _incident(camera: str) -> dict[str, Any]:
    from dispatch.testing import make_incident

    inc = make_incident(
        camera_id=camera, severity="medium", started_at=T0, confidence=0.9, worker_id="poison", boxes=[[1, 2, 3, 4]]
    )
    doc: dict[str, Any] = json.loads(inc.model_dump_json())
    return doc


def _plate(camera: str) -> dict[str, Any]:
    from dispatch.testing import make_plate_read

    doc: dict[str, Any] = json.loads(make_plate_read(camera, at=T0).model_dump_json())
    return doc


def _camera(camera: str) -> dict[str, Any]:
    return {"schema_version": 1, "camera": {"id": camera, "url": f"rtsp://127.0.0.1/{camera}", "enabled": False}}


TEMPLATES: dict[str, Callable[[str], dict[str, Any]]] = {
    topics.INCIDENTS: _incident,
    topics.PLATES: _plate,
    topics.CAMERAS: _camera,
}


def bad_record(kind: str, topic: str, i: int, tag: str = "") -> Record:
    """The ``i``-th bad record of ``kind`` for ``topic`` (unique bytes for every (tag, kind, i))."""
    camera = f"poison{tag}-{kind.replace('_', '-')}-{i}"
    key = camera.encode()
    doc = TEMPLATES[topic](camera)
    if kind == "deep":
        depth = 5000
        return key, b'{"n": "%s", "x": ' % camera.encode() + b"[" * depth + b"]" * depth + b"}"
    if kind == "huge":
        return key, json.dumps({"n": camera, "pad": "\U0001f600" * HUGE_CHARS}, ensure_ascii=False).encode()
    if kind == "wrong_types":
        wrong: dict[str, Any] = {k: ([v] if not isinstance(v, list) else {"v": v}) for k, v in doc.items()}
        wrong["n"] = camera
        return key, json.dumps(wrong).encode()
    if kind == "wrong_version":
        doc["schema_version"] = 99
        return key, json.dumps(doc).encode()
    if kind == "invalid_utf8":
        return key, b'{"camera_id": "\xff\xfe\xfd' + camera.encode() + b'"}'
    if kind == "null_key":
        return None, json.dumps(doc).encode()
    raise ValueError(f"unknown poison kind {kind!r}; known: {KINDS}")
