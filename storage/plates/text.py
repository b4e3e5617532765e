"""Plate text: normalisation of what users type, OCR-confusion folding, and the weighted edit distance.

Why a weighted distance: an OCR engine that reads ``123ABCO2`` for ``123ABC02``
made a *likely* mistake (O and 0 look alike on a plate), so an investigator
searching for ``123ABC02`` should see that read before one of ``123ABD02``,
which differs by an unrelated character. A confusion substitution therefore
costs :data:`CONFUSION_COST` (< 1) and every other edit costs 1.

Why folding: mapping every member of a confusion group to one representative
(``O -> 0``, ``I -> 1`` ...) turns "differs only by confusions" into plain
equality, which an ordinary B-tree index answers in microseconds, and the
unweighted Levenshtein distance between folded strings is a lower bound of the
weighted distance (each confusion substitution becomes a no-op, every other
edit costs at most 1), so the database can prefilter candidates soundly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

#: Pairs of characters OCR engines confuse on plates (DESIGN.md: O/0, I/1, B/8, S/5, Z/2).
DEFAULT_CONFUSIONS: tuple[tuple[str, str], ...] = (("O", "0"), ("I", "1"), ("B", "8"), ("S", "5"), ("Z", "2"))
#: Cost of substituting one member of a confusion pair for the other; every other edit costs 1.
CONFUSION_COST = 0.3

PLATE_MIN_LEN = 2
PLATE_MAX_LEN = 16
_PLATE_RE = re.compile(r"^[A-Z0-9]+$")

# Cyrillic letters that are drawn like Latin ones on Russian and Kazakh plates: folded to Latin so a
# plate typed on a Cyrillic keyboard finds what the OCR stored.
_CYRILLIC = str.maketrans("АВЕКМНОРСТУХ", "ABEKMHOPCTYX")
_SEPARATORS = re.compile(r"[\s\-.·]+")


class PlateTextError(ValueError):
    """A plate (or pattern) a user typed cannot be a plate: the message says why."""


def normalise(text: str, *, allow: str = "") -> str:
    """Upper-case, Cyrillic look-alikes to Latin, separators removed; raises on any other character.

    ``allow`` names extra characters to keep (the wildcard parser keeps ``*`` and ``?``).
    Refusing unknown characters here (rather than escaping them) keeps quotes, ``%`` and SQL
    comments out of every query by construction, on top of parameterised SQL.
    """
    if not isinstance(text, str):
        raise PlateTextError("plate must be text")
    if len(text) > 64:
        raise PlateTextError("plate text longer than 64 characters")
    out = _SEPARATORS.sub("", text.upper().translate(_CYRILLIC))
    bad = sorted({c for c in out if not (("A" <= c <= "Z") or ("0" <= c <= "9") or c in allow)})
    if bad:
        shown = "".join(bad[:8])
        raise PlateTextError(f"plate may only hold letters A-Z and digits 0-9; found {shown!r}")
    return out


def normalise_plate(text: str) -> str:
    """A normalised plate, with length bounds checked."""
    plate = normalise(text)
    if not (PLATE_MIN_LEN <= len(plate) <= PLATE_MAX_LEN):
        raise PlateTextError(f"plate must have {PLATE_MIN_LEN}..{PLATE_MAX_LEN} letters/digits, got {len(plate)}")
    return plate


def is_plate(text: str) -> bool:
    """True for an already-normalised plate (what the index stores)."""
    return PLATE_MIN_LEN <= len(text) <= PLATE_MAX_LEN and bool(_PLATE_RE.match(text))


@lru_cache(maxsize=8)
def _tables(confusions: tuple[tuple[str, str], ...]) -> tuple[dict[str, str], frozenset[tuple[str, str]]]:
    """Fold map (union-find over the pairs, smallest member represents its group) and the pair set."""
    parent: dict[str, str] = {}

    def find(c: str) -> str:
        while parent.get(c, c) != c:
            c = parent[c]
        return c

    for a, b in confusions:
        ra, rb = find(a), find(b)
        if ra != rb:
            lo, hi = sorted((ra, rb))
            parent[hi] = lo
    fold = {c: find(c) for pair in confusions for c in pair}
    pairs = frozenset((a, b) for a, b in confusions) | frozenset((b, a) for a, b in confusions)
    return fold, pairs


def fold(plate: str, confusions: tuple[tuple[str, str], ...] = DEFAULT_CONFUSIONS) -> str:
    """Every confusable character replaced by its group's representative: ``123ABCO2`` -> ``123A8C02``."""
    fmap, _ = _tables(confusions)
    return "".join(fmap.get(c, c) for c in plate)


def weighted_distance(
    a: str,
    b: str,
    *,
    limit: float | None = None,
    confusions: tuple[tuple[str, str], ...] = DEFAULT_CONFUSIONS,
) -> float:
    """Levenshtein distance where a confusion substitution costs :data:`CONFUSION_COST`, other edits 1.

    With ``limit``, the computation stops early and returns ``inf`` once the distance must exceed it;
    it also only fills a diagonal band of width ``floor(limit)`` (insertions and deletions cost 1, so an
    alignment leaving the band already costs more than the limit). That keeps ranking thousands of
    candidates in Python cheap.
    """
    if a == b:
        return 0.0
    _, pairs = _tables(confusions)
    n, m = len(a), len(b)
    inf = float("inf")
    band = max(n, m) if limit is None else int(limit)
    if abs(n - m) > band:
        return inf
    prev = [float(j) if j <= band else inf for j in range(m + 1)]
    for i in range(1, n + 1):
        cur = [inf] * (m + 1)
        if i <= band:
            cur[0] = float(i)
        lo, hi = max(1, i - band), min(m, i + band)
        ai = a[i - 1]
        row_min = cur[0]
        for j in range(lo, hi + 1):
            bj = b[j - 1]
            if ai == bj:
                sub = prev[j - 1]
            elif (ai, bj) in pairs:
                sub = prev[j - 1] + CONFUSION_COST
            else:
                sub = prev[j - 1] + 1.0
            best = min(sub, prev[j] + 1.0, cur[j - 1] + 1.0)
            cur[j] = best
            row_min = min(row_min, best)
        if limit is not None and row_min > limit + 1e-9:
            return inf
        prev = cur
    d = prev[m]
    if limit is not None and d > limit + 1e-9:
        return inf
    return round(d, 6)


def rank(
    query: str,
    plates: Iterable[str],
    max_distance: float,
    confusions: tuple[tuple[str, str], ...] = DEFAULT_CONFUSIONS,
) -> list[tuple[str, float]]:
    """Plates within ``max_distance`` of ``query``, nearest first (ties broken by the plate, for stable pages)."""
    scored = []
    for p in set(plates):
        d = weighted_distance(query, p, limit=max_distance, confusions=confusions)
        if d <= max_distance + 1e-9:
            scored.append((p, d))
    scored.sort(key=lambda pd: (pd[1], pd[0]))
    return scored


def trigram_count(text: str) -> int:
    """How many distinct trigrams pg_trgm extracts from one word (two blanks before, one after)."""
    padded = f"  {text.lower()} "
    return len({padded[i : i + 3] for i in range(len(padded) - 2)})


def trigram_threshold(query: str, edits: int, floor: float = 0.05) -> float:
    """A pg_trgm similarity threshold no string within ``edits`` unweighted edits of ``query`` falls below.

    One edit changes at most three of the query's trigrams (and adds at most three), so with ``t`` trigrams
    at least ``t - 3k`` stay shared of at most ``t + 3k`` in the union. Rounded down a little, as pg_trgm
    counts distinct trigrams and repeated ones (``AAA``) shift the ratio.
    """
    t = trigram_count(query)
    if edits <= 0:
        return 1.0
    shared, union = t - 3 * edits, t + 3 * edits
    if shared <= 0:
        return floor
    return max(floor, shared / union - 0.05)
