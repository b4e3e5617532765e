"""Camera ingest: PyAV sources, analysis-rate sampling, key-frame-only decoding, health and reconnects.

Imports only :mod:`core` and libraries: ingest knows nothing of detectors or Kafka.
"""

from ingest.camera import CameraRunner, RunnerStats, StatusChange
from ingest.sampler import KeyframePolicy, RateSampler
from ingest.source import PacketSource, PyAVSource, SourceError, SourcePacket, StreamInfo

__all__ = [
    "CameraRunner",
    "KeyframePolicy",
    "PacketSource",
    "PyAVSource",
    "RateSampler",
    "RunnerStats",
    "SourceError",
    "SourcePacket",
    "StatusChange",
    "StreamInfo",
]
