"""Which frames to analyse, and whether decoding key frames alone is enough.

Both decisions use presentation timestamps (stream time), never wall time:
a file replayed ten times faster than real time, or a camera whose packets
arrive in bursts after a network hiccup, still yields ``analysis_fps`` frames
per second *of video*, so rules that count seconds (loitering, fire confirmed
over N frames) see the same sequence at any replay speed.
"""

from __future__ import annotations

from collections import deque
from typing import Literal

KeyframeMode = Literal["auto", "always", "never"]


class RateSampler:
    """Keeps frames spaced at least ``1 / analysis_fps`` apart in stream time.

    The next due time advances by whole intervals rather than from the frame
    actually taken, so a 10 fps stream sampled at 3 fps gives 3 frames a second
    (0, 0.4, 0.7, 1.0 ...) instead of drifting down to 2.5. A jump in the
    timestamps (a reconnect, a loop, a camera clock reset) re-anchors the
    schedule instead of releasing a burst or starving for the length of the gap.
    """

    # Timestamps jitter (camera clocks, 90 kHz rounding): a frame slightly early (a tenth of an interval,
    # at most 15 ms, less than one frame at 60 fps) still counts as due. The long-run rate cannot exceed
    # analysis_fps because the schedule advances by whole intervals, never from the (early) frame taken.
    _TOLERANCE = 0.1
    _MAX_SLACK_S = 0.015

    def __init__(self, analysis_fps: float, *, max_gap_s: float = 5.0) -> None:
        if analysis_fps <= 0:
            raise ValueError("analysis_fps must be positive")
        self.interval_s = 1.0 / analysis_fps
        self._max_gap_s = max(max_gap_s, 2 * self.interval_s)
        self._slack = min(self.interval_s * self._TOLERANCE, self._MAX_SLACK_S)
        self._due: float | None = None
        self._last: float | None = None

    def reset(self) -> None:
        self._due = None
        self._last = None

    def take(self, pts_s: float) -> bool:
        """True when the frame at ``pts_s`` should be analysed (and the schedule advances)."""
        if self._due is None or self._last is None or self._jumped(pts_s):
            self._due = pts_s + self.interval_s
            self._last = pts_s
            return True
        self._last = max(self._last, pts_s)
        if pts_s + self._slack < self._due:
            return False
        self._due += self.interval_s
        if self._due <= pts_s:  # we were more than one interval late: do not owe a burst of frames
            self._due = pts_s + self.interval_s
        return True

    def _jumped(self, pts_s: float) -> bool:
        # Decoded frames and key packets arrive in presentation order, so going back by more than an
        # interval means the timeline restarted; going forward past the schedule by more than max_gap_s
        # means packets were lost or the clock jumped.
        assert self._due is not None and self._last is not None
        return pts_s < self._last - self.interval_s or pts_s > self._due + self._max_gap_s

    def peek(self, pts_s: float) -> bool:
        """Whether :meth:`take` would accept ``pts_s``, without advancing."""
        if self._due is None or self._last is None:
            return True
        if self._jumped(pts_s):
            return True
        return pts_s + self._slack >= self._due


class KeyframePolicy:
    """Observes the key-frame interval from demuxed packets and decides key-frame-only decoding.

    ``auto``: key-frame-only once at least two key-frame intervals have been seen
    and the longest of the recent ones is no longer than the analysis interval
    (with 5 % slack for timestamp jitter): then every frame we would analyse can
    be a key frame, and the non-key packets, typically 90-97 % of a stream's
    decode work, are never decoded. If the group-of-pictures grows later (a
    camera reconfigured) the policy falls back to full decoding.
    ``always``: key frames only, even if that analyses fewer frames than asked.
    ``never``: decode everything and sample.
    """

    _SLACK = 1.05

    def __init__(self, mode: KeyframeMode, analysis_fps: float, *, history: int = 4) -> None:
        self.mode: KeyframeMode = mode
        self.analysis_interval_s = 1.0 / analysis_fps
        self._intervals: deque[float] = deque(maxlen=history)
        self._last_key_pts: float | None = None

    def reset(self) -> None:
        """Forget observations (a new connection may have a different GOP)."""
        self._intervals.clear()
        self._last_key_pts = None

    def observe(self, keyframe: bool, pts_s: float | None) -> None:
        if not keyframe or pts_s is None:
            return
        if self._last_key_pts is not None:
            gap = pts_s - self._last_key_pts
            if 0 < gap < 60.0:  # ignore jumps (loops, reconnects) when estimating the GOP
                self._intervals.append(gap)
        self._last_key_pts = pts_s

    @property
    def keyframe_interval_s(self) -> float | None:
        """The longest recently observed key-frame interval, None before two have been seen."""
        return max(self._intervals) if self._intervals else None

    def keyframe_only(self) -> bool:
        if self.mode == "always":
            return True
        if self.mode == "never":
            return False
        if len(self._intervals) < 2:
            return False
        return max(self._intervals) <= self.analysis_interval_s * self._SLACK
