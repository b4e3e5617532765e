"""The clip reference shared by storage (which writes clips) and events (which point to them).

Like :mod:`core.snapshot`, it lives in ``core`` because ``storage`` must not
import ``event_bus``. A clip is evidence, so its reference says what a court
would ask: where the object is, which bytes it holds (sha256 and size), what
time span it covers, and whether it is complete. An incomplete clip (camera
dropped, worker died, recording cut short) is published marked as such, never
left out, so a reader can tell "no clip" from "a clip that stops early".
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

SHA256_PATTERN = r"^[0-9a-f]{64}$"
MAX_CLIP_BYTES = 2_000_000_000


class ClipStatus(StrEnum):
    """``complete``: pre-roll to post-roll as configured; ``incomplete``: the object holds less (see ``reason``)."""

    COMPLETE = "complete"
    INCOMPLETE = "incomplete"


class ClipRef(BaseModel):
    """Where an incident's clip lives and what it covers; sha256 and size identify the exact bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: Literal["s3", "local"]
    bucket: str = Field(min_length=1, max_length=63)
    key: str = Field(min_length=1, max_length=1024)
    sha256: str = Field(pattern=SHA256_PATTERN)
    size: int = Field(ge=1, le=MAX_CLIP_BYTES)
    content_type: Literal["video/mp4"] = "video/mp4"
    started_at: AwareDatetime = Field(description="capture time of the clip's first (key) frame")
    ended_at: AwareDatetime = Field(description="capture time of the clip's last frame")
    duration_s: float = Field(ge=0.0, le=86_400.0)
    status: ClipStatus
    reason: str = Field(default="", max_length=256, description="why the clip is incomplete; empty when complete")
    manifest_key: str | None = Field(default=None, max_length=1024, description="chain-of-custody manifest beside it")
    masks: list[Annotated[list[tuple[float, float]], Field(min_length=3, max_length=64)]] = Field(
        default_factory=list,
        max_length=32,
        description="privacy polygons (0..1) of the camera when recorded: burned into any copy a dispatcher sees",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.ended_at < self.started_at:
            raise ValueError("clip ends before it starts")
        if self.status is ClipStatus.INCOMPLETE and not self.reason:
            raise ValueError("an incomplete clip must say why (reason)")
        return self
