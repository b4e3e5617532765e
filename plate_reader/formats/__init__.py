"""Plate formats (from ``plates.yaml``) and the correction of OCR reads against them.

An OCR model reads characters, not plates: it does not know that the fourth
character of ``123ABC02`` must be a letter, so it happily reads ``123A8C02``.
Formats know. A read is a sequence of *character hypotheses* (each a small
distribution over the plate alphabet: the recogniser's own probabilities
where it gives them, else its one character with its confidence). Each
format is aligned to the read by dynamic programming: every observed
character either fills the next position of the format or is skipped (the
``KZ`` of the flag band, ``RUS`` under the region, a smudge). Filling a
position with a character of the wrong class is allowed only through the
look-alike table (``8`` -> ``B`` in a letter position), at half the
probability. The best-scoring alignment over all formats, weighted by each
format's prior, wins; the generic fallback accepts any 4-10 characters
uncorrected, at a low prior, so that an unknown format is still recorded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.yaml_file import read_yaml
from plate_reader.normalize import ALPHABET

DEFAULT_FORMATS = Path(__file__).with_name("plates.yaml")
CharHyp = Mapping[str, float]
"""One observed character: plate-alphabet character -> probability (summing to at most 1)."""

LOOKALIKE_WEIGHT = 0.5
"""Probability share a look-alike gets from the observed character (``O`` at 0.9 -> ``0`` at 0.45 at least)."""
LOOKALIKE_DECAY = 0.7
"""Each further look-alike in a list gets this factor less (``0`` -> ``O`` 0.5, ``D`` 0.35, ``Q`` 0.245)."""
EDGE_SKIP = 0.5
"""Cost (as a probability) of dropping a character before or after the plate text: flag bands, country codes."""
MIN_MIDDLE_SKIP, MAX_MIDDLE_SKIP = 0.03, 0.35
"""Bounds of the cost of dropping a character inside the plate text: a confident character is expensive to
drop, and even an unsure one costs more than an edge character (decorations sit at the edges)."""
FLOOR = 1e-4
REGION_PENALTY = 0.3
"""Factor for a region code the format does not list (a misread region is likelier than an unknown one)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FormatSpec(_Strict):
    id: str = Field(pattern=r"^[a-z0-9-]+$")
    country: str = Field(min_length=2, max_length=2)
    description: str = ""
    pattern: str = Field(min_length=2, max_length=12)
    region_digits: int = Field(default=0, ge=0, le=3)
    regions: list[str] = Field(default_factory=list)
    prior: float = Field(gt=0.0, le=1.0)


class GenericSpec(_Strict):
    id: str = "generic"
    country: str = "??"
    description: str = ""
    min_length: int = Field(default=4, ge=1, le=12)
    max_length: int = Field(default=10, ge=1, le=16)
    prior: float = Field(default=0.01, gt=0.0, le=1.0)


class FormatFile(_Strict):
    schema_version: int = Field(ge=1, le=1)
    classes: dict[str, str]
    lookalikes: dict[str, str] = Field(default_factory=dict)
    formats: list[FormatSpec]
    generic: GenericSpec = GenericSpec()

    @model_validator(mode="after")
    def _consistent(self) -> FormatFile:
        for name, chars in self.classes.items():
            if len(name) != 1 or not chars or set(chars) - ALPHABET:
                raise ValueError(f"class {name!r} must be one letter naming characters of A-Z0-9, got {chars!r}")
        ids = [f.id for f in self.formats] + [self.generic.id]
        if len(set(ids)) != len(ids):
            raise ValueError("format ids must be unique")
        for f in self.formats:
            unknown = set(f.pattern) - set(self.classes)
            if unknown:
                raise ValueError(f"format {f.id}: pattern uses undefined classes {sorted(unknown)}")
            for r in f.regions:
                if len(r) != f.region_digits:
                    raise ValueError(f"format {f.id}: region {r!r} is not {f.region_digits} characters")
        for src, dst in self.lookalikes.items():
            if len(src) != 1 or set(src + dst) - ALPHABET:
                raise ValueError(f"lookalike {src!r}: {dst!r} must map one plate character to plate characters")
        return self


@dataclass(frozen=True, slots=True)
class PlateFormat:
    """One compiled format: the allowed characters of each position."""

    id: str
    country: str
    description: str
    positions: tuple[frozenset[str], ...]
    region_digits: int
    regions: frozenset[str]
    prior: float

    def __len__(self) -> int:
        return len(self.positions)

    def accepts(self, text: str) -> bool:
        """Whether ``text`` (normalised) is exactly a plate of this format."""
        if len(text) != len(self.positions):
            return False
        if any(c not in allowed for c, allowed in zip(text, self.positions, strict=True)):
            return False
        return not self.regions or text[len(text) - self.region_digits :] in self.regions


@dataclass(frozen=True, slots=True)
class FormatMatch:
    """A read fitted to a format: the corrected text and how sure we are of each position."""

    format_id: str
    country: str
    text: str
    confidence: float
    """Geometric mean of the per-position probabilities (0..1)."""
    log_score: float
    """Alignment log-probability including skips, the region check and the format prior (for ranking)."""
    positions: tuple[Mapping[str, float], ...] = field(default=())
    """Per position: allowed character -> probability (normalised), for voting across frames."""
    corrected: int = 0
    """How many positions hold a character other than the one the OCR read there."""


class FormatBook:
    """The formats of one ``plates.yaml``, with the read-correction that uses them."""

    def __init__(self, spec: FormatFile) -> None:
        self.spec = spec
        self.classes = {k: frozenset(v) for k, v in spec.classes.items()}
        self.formats = [
            PlateFormat(
                f.id,
                f.country,
                f.description,
                tuple(self.classes[c] for c in f.pattern),
                f.region_digits,
                frozenset(f.regions),
                f.prior,
            )
            for f in spec.formats
        ]
        self.generic = spec.generic
        # reverse look-alike table: target character -> [(observed character, weight)]
        # the first look-alike listed is the likeliest: weights decay along each list
        self._sources: dict[str, list[tuple[str, float]]] = {}
        for src, dsts in spec.lookalikes.items():
            for rank, d in enumerate(dsts):
                self._sources.setdefault(d, []).append((src, LOOKALIKE_WEIGHT * LOOKALIKE_DECAY**rank))

    @classmethod
    def load(cls, path: Path | None = None) -> FormatBook:
        return _load(Path(path) if path is not None else DEFAULT_FORMATS)

    def get(self, format_id: str) -> PlateFormat:
        for f in self.formats:
            if f.id == format_id:
                return f
        raise KeyError(f"unknown plate format {format_id!r}; known: {[f.id for f in self.formats]}")

    def identify(self, text: str) -> str:
        """The id of the first format that accepts ``text`` exactly, else the generic id."""
        for f in self.formats:
            if f.accepts(text):
                return f.id
        return self.generic.id

    # -- correction ---------------------------------------------------------------------------------------------

    def position_probs(self, hyp: CharHyp, allowed: frozenset[str]) -> dict[str, float]:
        """Probability of each allowed character given one observed character (look-alikes at half weight)."""
        out: dict[str, float] = {}
        for ch, p in hyp.items():
            if ch in allowed:
                out[ch] = out.get(ch, 0.0) + p
        for target in allowed:
            for src, weight in self._sources.get(target, ()):
                p = hyp.get(src, 0.0)
                if p > 0.0 and src not in allowed:
                    out[target] = out.get(target, 0.0) + weight * p
        return {k: min(v, 1.0) for k, v in out.items() if v > 0.0}

    def fit(self, fmt: PlateFormat, chars: Sequence[CharHyp]) -> FormatMatch | None:
        """Best alignment of the observed characters to ``fmt``; None when the read is too short."""
        n, m = len(chars), len(fmt)
        if n < m:
            return None
        top = [max(h.values(), default=0.0) for h in chars]
        neg = -math.inf
        # dp[i][j]: best log-prob having consumed i observations and filled j positions
        dp = [[neg] * (m + 1) for _ in range(n + 1)]
        back: list[list[int]] = [[0] * (m + 1) for _ in range(n + 1)]  # 1 = matched, 2 = skipped
        probs_cache: dict[tuple[int, int], dict[str, float]] = {}
        dp[0][0] = 0.0
        edge = math.log(EDGE_SKIP)
        for i in range(1, n + 1):
            mid = math.log(min(MAX_MIDDLE_SKIP, max(MIN_MIDDLE_SKIP, 1.0 - top[i - 1])))
            for j in range(0, min(i, m) + 1):
                best, how = neg, 0
                if dp[i - 1][j] > neg:  # skip observation i-1
                    cost = edge if j in (0, m) else mid
                    best, how = dp[i - 1][j] + cost, 2
                if j > 0 and dp[i - 1][j - 1] > neg:
                    pp = self.position_probs(chars[i - 1], fmt.positions[j - 1])
                    probs_cache[(i - 1, j - 1)] = pp
                    val = dp[i - 1][j - 1] + math.log(max(max(pp.values(), default=0.0), FLOOR))
                    if val > best:
                        best, how = val, 1
                dp[i][j], back[i][j] = best, how
        if dp[n][m] == neg:
            return None
        # walk back: which observation fills which position
        filled: list[int] = [0] * m
        i, j = n, m
        while i > 0:
            if back[i][j] == 1:
                filled[j - 1] = i - 1
                j -= 1
            i -= 1
        positions: list[dict[str, float]] = []
        text, logp, corrected = [], 0.0, 0
        for pos, obs in enumerate(filled):
            pp = probs_cache.get((obs, pos)) or self.position_probs(chars[obs], fmt.positions[pos])
            ch, p = max(pp.items(), key=lambda kv: kv[1]) if pp else (sorted(fmt.positions[pos])[0], FLOOR)
            total = sum(pp.values()) or 1.0
            positions.append({k: v / total for k, v in pp.items()} or {ch: 1.0})
            text.append(ch)
            logp += math.log(max(p, FLOOR))
            observed = max(chars[obs].items(), key=lambda kv: kv[1])[0] if chars[obs] else ""
            corrected += int(observed != ch)
        plate = "".join(text)
        score = dp[n][m] + math.log(fmt.prior)
        if fmt.regions and plate[m - fmt.region_digits :] not in fmt.regions:
            score += math.log(REGION_PENALTY)
        return FormatMatch(fmt.id, fmt.country, plate, math.exp(logp / m), score, tuple(positions), corrected)

    def fit_generic(self, chars: Sequence[CharHyp]) -> FormatMatch | None:
        """The read as it is (its most likely character per observation), when its length is plausible."""
        g = self.generic
        kept = [h for h in chars if h]
        if not (g.min_length <= len(kept) <= g.max_length):
            return None
        best = [max(h.items(), key=lambda kv: kv[1]) for h in kept]
        logp = sum(math.log(max(p, FLOOR)) for _, p in best)
        positions = tuple({c: 1.0} for c, _ in best)
        return FormatMatch(
            g.id,
            g.country,
            "".join(c for c, _ in best),
            math.exp(logp / len(best)),
            logp + math.log(g.prior),
            positions,
            0,
        )

    def match(self, chars: Sequence[CharHyp], top_k: int = 3) -> list[FormatMatch]:
        """Every format's fit (the generic one included), best first; empty when nothing fits."""
        fits = [f for f in (self.fit(fmt, chars) for fmt in self.formats) if f is not None]
        generic = self.fit_generic(chars)
        if generic is not None:
            fits.append(generic)
        fits.sort(key=lambda f: f.log_score, reverse=True)
        return fits[:top_k]

    def correct_text(self, text: str, confidence: float = 0.9) -> FormatMatch | None:
        """Correct a plain string (an OCR result without per-character probabilities, or typed input)."""
        from plate_reader.normalize import normalise_plate

        chars = [{c: confidence} for c in normalise_plate(text)]
        best = self.match(chars, top_k=1)
        return best[0] if best else None


@lru_cache(maxsize=8)
def _load(path: Path) -> FormatBook:
    data = read_yaml(path, "plate formats", ValueError)
    try:
        return FormatBook(FormatFile.model_validate(data))
    except ValidationError as exc:
        raise ValueError(f"plate formats {path} are invalid:\n{exc}") from None


__all__ = ["CharHyp", "FormatBook", "FormatMatch", "PlateFormat"]
