"""One plate per vehicle pass: a vote over the frames of a track.

A single frame's read is often wrong in one character (motion blur, a shadow
across a digit); the same character is rarely wrong the same way in every
frame. Reads are grouped by format (a track's reads should agree on it; the
format with the most confidence-weighted support wins), then each position
is voted over the per-position distributions of the reads of that format,
weighted by each read's confidence. The result's confidence combines how
much of the weight agreed on the format, how decisive each position was, the
reads' own confidence, and how many reads there were (one frame is a lead,
several agreeing frames are a fact).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from plate_reader.pipeline import PlateObservation

SUPPORT_BASE = 0.3
"""Confidence factor from the number of reads n is ``1 - SUPPORT_BASE**n``: 0.70, 0.91, 0.97, ..."""


@dataclass(frozen=True, slots=True)
class VoteResult:
    plate: str
    format_id: str
    country: str
    confidence: float
    candidates: tuple[tuple[str, float], ...]
    """Alternative plates with their share of the vote, best first (the winner included)."""
    reads: int
    best: PlateObservation
    """The read that agrees with the vote and had the highest confidence: its frame is the snapshot."""


@dataclass
class TrackVote:
    """The reads of one track so far."""

    observations: list[PlateObservation] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)

    def add(self, obs: PlateObservation, min_read_confidence: float = 0.0) -> bool:
        """Count ``obs`` if it has a format read of at least ``min_read_confidence``; True when counted."""
        best = obs.best
        if best is None or best.confidence < min_read_confidence:
            return False
        self.observations.append(obs)
        self.weights.append(max(best.confidence, 1e-3))
        return True

    @property
    def count(self) -> int:
        return len(self.observations)

    def result(self, top_k: int = 3) -> VoteResult | None:
        """The voted plate, or None when no read was counted."""
        if not self.observations:
            return None
        by_format: dict[str, float] = defaultdict(float)
        for obs, w in zip(self.observations, self.weights, strict=True):
            assert obs.best is not None
            by_format[obs.best.format_id] += w
        total = sum(by_format.values())
        fmt_id, fmt_weight = max(by_format.items(), key=lambda kv: kv[1])
        members = [
            (o, w)
            for o, w in zip(self.observations, self.weights, strict=True)
            if o.best is not None and o.best.format_id == fmt_id
        ]
        length = max(len(o.best.text) for o, _ in members if o.best is not None)
        members = [(o, w) for o, w in members if o.best is not None and len(o.best.text) == length]
        tallies: list[dict[str, float]] = [defaultdict(float) for _ in range(length)]
        for o, w in members:
            assert o.best is not None
            for pos, dist in enumerate(o.best.positions):
                for ch, p in dist.items():
                    tallies[pos][ch] += w * p
        plate_chars, decisiveness = [], []
        for t in tallies:
            ch, v = max(t.items(), key=lambda kv: kv[1])
            plate_chars.append(ch)
            decisiveness.append(v / (sum(t.values()) or 1.0))
        plate = "".join(plate_chars)
        agreement = math.exp(sum(math.log(max(d, 1e-6)) for d in decisiveness) / length)
        read_conf = sum(w for _, w in members) / len(members)
        support = 1.0 - SUPPORT_BASE ** len(members)
        confidence = (fmt_weight / total) * agreement * read_conf * support
        # candidates: the voted plate and each distinct whole-frame read, by supporting weight
        scores: dict[str, float] = defaultdict(float)
        for o, w in zip(self.observations, self.weights, strict=True):
            assert o.best is not None
            scores[o.best.text] += w
            for alt in o.matches[1:]:
                scores[alt.text] += w * 0.25 * math.exp(alt.log_score - o.best.log_score)
        scores[plate] = max(scores[plate], *scores.values())
        # the runner-up character at the least decisive position is the likeliest single-character error
        weakest = min(range(length), key=lambda i: decisiveness[i])
        ranked = sorted(tallies[weakest].items(), key=lambda kv: kv[1], reverse=True)
        if len(ranked) > 1:
            alt_plate = plate[:weakest] + ranked[1][0] + plate[weakest + 1 :]
            share = ranked[1][1] / (sum(tallies[weakest].values()) or 1.0)
            scores[alt_plate] = max(scores[alt_plate], share * scores[plate])
        norm = sum(scores.values()) or 1.0
        ranked_plates = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0] != plate))
        ranked_plates.sort(key=lambda kv: kv[0] != plate)  # the winner first, the rest by score
        candidates = tuple((p, round(s / norm, 4)) for p, s in ranked_plates[:top_k])
        agreeing = [(o, w) for o, w in members if o.best is not None and o.best.text == plate] or members
        best = max(agreeing, key=lambda ow: ow[1])[0]
        country = best.best.country if best.best is not None else "??"
        return VoteResult(plate, fmt_id, country, min(1.0, confidence), candidates, len(members), best)
