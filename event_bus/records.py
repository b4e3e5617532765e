"""Event -> outbox record: the one serialiser every producer of events uses.

The topic follows from the event's type, the key is the camera id (Kafka
keeps per-camera order by key) and the value is the event's compact JSON, so
every consumer reads the same bytes whoever wrote them.
"""

from __future__ import annotations

from event_bus import topics
from event_bus.events import CameraStatus, Incident, LineCount, PlateRead
from event_bus.interfaces import OutRecord

TOPIC_OF: dict[type[Incident | PlateRead | CameraStatus | LineCount], str] = {
    Incident: topics.INCIDENTS,
    PlateRead: topics.PLATES,
    CameraStatus: topics.CAMERA_STATUS,
    LineCount: topics.LINE_COUNTS,
}


def to_record(
    event: Incident | PlateRead | CameraStatus | LineCount, headers: tuple[tuple[str, bytes], ...] = ()
) -> OutRecord:
    """The record that carries ``event`` on its topic, keyed by camera."""
    return OutRecord(TOPIC_OF[type(event)], event.camera_id, event.model_dump_json().encode(), headers)
