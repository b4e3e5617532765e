"""Evidence clips: a pre-roll ring per camera, one recording per incident, published once complete.

How a clip is made (nothing is decoded or re-encoded):

1. :class:`CameraClips` is the camera runner's packet tap: every compressed
   packet is copied into the camera's :class:`~ingest.packet_ring.PacketRing`
   and into the part file of each recording in progress.
2. An incident's start event (seen in :meth:`ClipRecorder.observe`, right
   after it is spooled) opens a recording seeded with the ring, from the last
   key frame at least ``pre_roll_s`` before the start.
3. Its end event sets the stop time, ``post_roll_s`` later in stream time; a
   recording longer than ``max_clip_s`` is cut there.
4. When the recording stops *and* the incident has ended, a finisher thread
   remuxes the part file to a faststart MP4, hashes it, and spools a copy of
   the incident's end event (``seq`` + 1) that carries the :class:`ClipRef`
   with the clip as the record's blob. The relay uploads the blob (multipart
   to S3) before it publishes the event, exactly like snapshots, so while S3
   is down the clip waits in the outbox and no event points to a missing
   object.

Nothing is silently dropped: a camera that drops mid-incident, a recording
cut at ``max_clip_s`` or stopped with the camera gives a clip marked
``incomplete`` with the reason. A worker killed mid-clip leaves its part file
and a sidecar holding the incident's last event; :meth:`ClipRecorder.recover`
(called at start) salvages every complete fragment and publishes it marked
incomplete, ending the incident the dead worker could not end.

Why one module over 400 lines: recording, finishing and recovering a clip are one life cycle over one
on-disk layout (part file, sidecar); the pieces only make sense together.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.config import EvidenceConfig
from event_bus.events import Incident, IncidentState, new_event_id
from ingest.clip_writer import ClipWriteError, ClipWriter, CodecTemplate, finalize
from ingest.packet_ring import PacketRing, RingPacket, RingStats
from ingest.source import SourcePacket, StreamInfo
from storage.clips import clip_key_for, clip_ref

log = logging.getLogger(__name__)

ClipSink = Callable[[Incident, bytes], None]
"""Spools an incident event together with its clip bytes (the blob uploaded before the event is published)."""

PRE_ROLL_SLACK_S = 5.0
"""The ring keeps this much more than ``pre_roll_s``: a start event comes after the frames that confirmed it."""


@dataclass
class _Recording:
    incident_id: str
    camera_id: str
    writer: ClipWriter
    sidecar: Path
    last_event: Incident
    masks: list[list[tuple[float, float]]]
    end_pts_s: float | None = None
    done: bool = False
    incomplete: str | None = None
    ended: bool = False


@dataclass
class ClipStats:
    """Counters for metrics; ``finalize_cpu_s`` is the finisher's CPU for the faststart remux and the hash."""

    started: int = 0
    complete: int = 0
    incomplete: int = 0
    failed: int = 0
    finalize_cpu_s: float = 0.0


class CameraClips:
    """The packet tap of one camera: its ring buffer and the recordings in progress."""

    def __init__(
        self,
        camera_id: str,
        cfg: EvidenceConfig,
        clip_dir: Path,
        recorder: ClipRecorder,
        masks: list[list[tuple[float, float]]] | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.masks = masks or []
        self.cfg = cfg
        self.clip_dir = clip_dir
        self.ring = PacketRing(cfg.pre_roll_s + PRE_ROLL_SLACK_S, cfg.ring_max_bytes)
        self._recorder = recorder
        self._template: CodecTemplate | None = None
        self._recordings: dict[str, _Recording] = {}
        self._lock = threading.Lock()
        self._latest: RingPacket | None = None
        self.tap_cpu_s = 0.0

    # -- PacketTap (camera thread) -------------------------------------------------------------------------------

    def opened(self, info: StreamInfo) -> None:
        self.ring.reset()
        template = None
        if info.stream is not None:
            try:
                template = CodecTemplate(info.stream)
            except Exception as exc:  # a codec MP4 cannot carry: the camera runs, its incidents get no clip
                log.warning("camera %s: no clips for codec %s: %s", self.camera_id, info.codec, exc)
        with self._lock:
            self._template = template
            self._latest = None

    def packet(self, packet: SourcePacket) -> None:
        t0 = time.thread_time()
        raw = packet.raw[0] if isinstance(packet.raw, tuple) else None
        if raw is None or packet.pts_s is None or self._template is None:
            return
        rp = RingPacket(
            data=bytes(raw),
            pts=raw.pts,
            dts=raw.dts,
            duration=int(raw.duration or 0),
            keyframe=packet.keyframe,
            pts_s=packet.pts_s,
            wall_s=time.time(),
        )
        self.ring.push(rp)
        finished: list[_Recording] = []
        with self._lock:
            self._latest = rp
            for rec in self._recordings.values():
                if rec.done:
                    continue
                if rec.end_pts_s is not None and rp.pts_s >= rec.end_pts_s:
                    rec.done = True
                    finished.append(rec)
                    continue
                rec.writer.add(rp)
                if rec.writer.span_s >= self.cfg.max_clip_s:
                    rec.done = True
                    rec.incomplete = f"cut at max_clip_s ({self.cfg.max_clip_s:g} s)"
                    finished.append(rec)
        for rec in finished:
            rec.writer.close()
            self._recorder.finished(rec)
        self.tap_cpu_s += time.thread_time() - t0

    def closed(self, reason: str) -> None:
        with self._lock:
            self._template = None
            recs = [r for r in self._recordings.values() if not r.done]
            for rec in recs:
                rec.done = True
                rec.incomplete = f"camera stream ended mid-clip: {reason}"[:256]
        for rec in recs:
            rec.writer.close()
            self._recorder.finished(rec)
        self.ring.reset()

    def live(self) -> tuple[PacketRing, CodecTemplate] | None:
        """What a live viewer streams from (the ring and this connection's codec), None while not connected."""
        with self._lock:
            return None if self._template is None else (self.ring, self._template)

    # -- incidents (pipeline thread) ------------------------------------------------------------------------------

    def observe(self, incident: Incident) -> None:
        key = str(incident.incident_id)
        with self._lock:
            rec = self._recordings.get(key)
            if rec is None and incident.state is IncidentState.START:
                rec = self._start(incident)
            if rec is None:
                return
            rec.last_event = incident
            _write_sidecar(rec)
            if incident.state is IncidentState.END:
                rec.ended = True
                if rec.end_pts_s is None and self._latest is not None:
                    lag = max(0.0, self._latest.wall_s - (incident.ended_at or incident.observed_at).timestamp())
                    rec.end_pts_s = self._latest.pts_s - lag + self.cfg.post_roll_s
        if rec.ended:
            self._recorder.maybe_publish(rec)

    def _start(self, incident: Incident) -> _Recording | None:
        if self._template is None or self._latest is None:
            return None  # no connection yet: nothing to record (the incident cannot have come from this camera)
        packets = self.ring.snapshot()
        lag = max(0.0, self._latest.wall_s - incident.started_at.timestamp())
        start_pts = self._latest.pts_s - lag - self.cfg.pre_roll_s
        first = 0
        for i, p in enumerate(packets):
            if p.keyframe and p.pts_s <= start_pts:
                first = i
        path = self.clip_dir / f"{incident.incident_id}.part"
        try:
            writer = ClipWriter(path, self._template)
        except Exception as exc:  # disk full, codec the MP4 muxer refuses: the incident goes on without a clip
            log.error("camera %s: cannot start a clip: %s", self.camera_id, exc)
            self._recorder.stats.failed += 1
            return None
        for p in packets[first:]:
            writer.add(p)
        rec = _Recording(
            str(incident.incident_id), self.camera_id, writer, path.with_suffix(".json"), incident, self.masks
        )
        self._recordings[rec.incident_id] = rec
        self._recorder.stats.started += 1
        return rec

    def forget(self, incident_id: str) -> None:
        with self._lock:
            self._recordings.pop(incident_id, None)


def _write_sidecar(rec: _Recording) -> None:
    """What recovery needs if the worker dies: the incident's latest event and when the clip starts (small)."""
    first = rec.writer.first
    doc = {
        "first_wall_s": first.wall_s if first else None,
        "masks": rec.masks,
        "event": rec.last_event.model_dump(mode="json"),
    }
    tmp = rec.sidecar.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    tmp.replace(rec.sidecar)


class ClipRecorder:
    """All cameras' clips of one worker, and the finisher thread that remuxes, hashes and spools them."""

    def __init__(self, cfg: EvidenceConfig, clip_dir: Path, sink: ClipSink, *, store_kind: str, bucket: str) -> None:
        self.cfg = cfg
        self.clip_dir = clip_dir
        self.clip_dir.mkdir(parents=True, exist_ok=True)
        self._sink = sink
        self._store_kind = store_kind
        self._bucket = bucket
        self._cameras: dict[str, CameraClips] = {}
        self._queue: queue.Queue[_Recording | None] = queue.Queue()
        self._pending = 0
        self._pending_lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self.stats = ClipStats()

    def tap(self, camera_id: str, masks: list[list[tuple[float, float]]] | None = None) -> CameraClips:
        """The packet tap of one camera; ``masks`` (its privacy polygons) go into each clip's reference."""
        clips = CameraClips(camera_id, self.cfg, self.clip_dir, self, masks)
        self._cameras[camera_id] = clips
        return clips

    def remove(self, camera_id: str) -> None:
        self._cameras.pop(camera_id, None)

    def observe(self, incident: Incident) -> None:
        """Every incident event the worker spooled (start opens a recording, end schedules its stop)."""
        clips = self._cameras.get(incident.camera_id)
        if clips is not None:
            clips.observe(incident)

    def finished(self, rec: _Recording) -> None:
        self.maybe_publish(rec)

    def maybe_publish(self, rec: _Recording) -> None:
        """Queue a recording for the finisher once it has stopped and its incident has ended."""
        if rec.done and rec.ended:
            clips = self._cameras.get(rec.camera_id)
            if clips is not None:
                clips.forget(rec.incident_id)
            with self._pending_lock:
                self._pending += 1
            self._queue.put(rec)

    # -- finisher thread --------------------------------------------------------------------------------------

    def start(self) -> ClipRecorder:
        self.recover()
        self._thread = threading.Thread(target=self._run, name="clip-finisher", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Finish what is queued (True when everything was spooled), then end the thread."""
        drained = self.wait_idle(timeout_s)
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout_s)
        return drained

    def wait_idle(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._pending_lock:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._pending_lock.wait(left)
        return True

    def _run(self) -> None:
        while True:
            rec = self._queue.get()
            if rec is None:
                return
            try:
                first = rec.writer.first
                started = datetime.fromtimestamp(first.wall_s, UTC) if first is not None else None
                self._publish(rec.writer.path, rec.last_event, rec.incomplete, started, rec.masks)
            except Exception as exc:  # the part file stays on disk: the next start salvages it
                self.stats.failed += 1
                log.error("clip of incident %s not published: %s", rec.incident_id, exc, exc_info=True)
            finally:
                with self._pending_lock:
                    self._pending -= 1
                    self._pending_lock.notify_all()

    def _publish(
        self,
        part: Path,
        last: Incident,
        incomplete: str | None,
        started: datetime | None,
        masks: list[list[tuple[float, float]]],
    ) -> None:
        t0 = time.thread_time()
        final = part.with_suffix(".mp4")
        try:
            facts = finalize(part, final)
        except ClipWriteError as exc:
            self.stats.failed += 1
            log.error("clip of incident %s has no video: %s", last.incident_id, exc)
            _cleanup(part)
            return
        started = started or last.started_at
        if not facts.first_is_keyframe:
            incomplete = incomplete or "clip does not start on a key frame"
        ref = clip_ref(
            store=self._store_kind,
            bucket=self._bucket,
            key=clip_key_for(last.camera_id, started, last.incident_id),
            sha256=facts.sha256,
            size=facts.size,
            started_at=started,
            duration_s=facts.duration_s,
            incomplete_reason=incomplete,
            masks=masks,
        )
        ended = last
        if last.state is not IncidentState.END:
            end_at = ref.ended_at if ref.ended_at > last.observed_at else last.observed_at
            ended = last.model_copy(update={"state": IncidentState.END, "ended_at": end_at, "observed_at": end_at})
        event = Incident.model_validate(
            {**ended.model_dump(), "event_id": new_event_id(), "seq": ended.seq + 1, "clip": ref.model_dump()}
        )
        self._sink(event, facts.data)
        self.stats.finalize_cpu_s += time.thread_time() - t0
        if incomplete:
            self.stats.incomplete += 1
        else:
            self.stats.complete += 1
        _cleanup(part)
        log.info("clip of incident %s spooled (%s, %.1f s)", last.incident_id, ref.status.value, ref.duration_s)

    def recover(self) -> int:
        """Publish, marked incomplete, every clip a previous run left unfinished (a crash); returns how many."""
        n = 0
        for part in sorted(self.clip_dir.glob("*.part")):
            sidecar = part.with_suffix(".json")
            try:
                doc = json.loads(sidecar.read_text(encoding="utf-8"))
                last = Incident.model_validate(doc["event"])
                wall = doc.get("first_wall_s")
                started = datetime.fromtimestamp(float(wall), UTC) if wall is not None else None
                masks = [[(float(x), float(y)) for x, y in m] for m in doc.get("masks") or []]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("clip %s has no readable incident record (%s); kept for an operator", part.name, exc)
                continue
            self._publish(part, last, "worker stopped while recording (crash or kill)", started, masks)
            n += 1
        return n

    def camera(self, camera_id: str) -> CameraClips | None:
        """The tap of a running camera (live view), None when this worker does not run it."""
        return self._cameras.get(camera_id)

    def ring_stats(self) -> dict[str, RingStats]:
        return {cid: c.ring.stats() for cid, c in list(self._cameras.items())}

    def tap_cpu_s(self) -> float:
        """CPU the camera threads spent copying packets into rings and part files (cameras running now)."""
        return sum(c.tap_cpu_s for c in list(self._cameras.values()))


def _cleanup(part: Path) -> None:
    for path in (part, part.with_suffix(".json"), part.with_suffix(".json.tmp"), part.with_suffix(".mp4")):
        path.unlink(missing_ok=True)
