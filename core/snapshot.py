"""The snapshot reference shared by storage (which writes objects) and events (which point to them).

It lives in ``core`` because ``storage`` must not import ``event_bus`` (nor the
other way round); ``event_bus.events`` re-exports it so event code keeps one name.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SnapshotRef(BaseModel):
    """Where an incident's snapshot lives; sha256 lets anyone check the object is the one the event means."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: Literal["s3", "local"]
    bucket: str = Field(min_length=1, max_length=63)
    key: str = Field(min_length=1, max_length=1024)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=1, le=50_000_000)
    content_type: Literal["image/jpeg"] = "image/jpeg"
