"""Plate text normalisation: one spelling per plate, whatever the OCR or the operator typed.

A plate is stored, searched and voted on in one alphabet: upper-case Latin
letters and digits, no spaces or separators. Russian plates are written in the
twelve Cyrillic letters that have Latin look-alikes (А В Е К М Н О Р С Т У Х),
and Kazakh plates in Latin; mapping Cyrillic to its Latin twin means
``А123ВС77`` typed on a Russian keyboard and ``A123BC77`` read by an English
OCR model are the same plate.
"""

from __future__ import annotations

import unicodedata

CYRILLIC_TO_LATIN: dict[str, str] = {
    "А": "A", "В": "B", "Е": "E", "Ё": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
    "Т": "T", "У": "Y", "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S", "Ү": "Y", "Ұ": "Y", "Қ": "K", "Ң": "H",
    "Ө": "O", "Һ": "H", "З": "3", "Ч": "4", "б": "6", "Б": "6",
}  # fmt: skip
"""Cyrillic (and Kazakh Cyrillic) letters -> the Latin letter or digit they look like on a plate."""

ALPHABET = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def fold_char(ch: str) -> str:
    """One character folded into the plate alphabet, or "" when it is a separator or not plate text.

    Full-width forms (from CJK-trained OCR models) are folded by NFKC first,
    then case, then Cyrillic look-alikes.
    """
    ch = unicodedata.normalize("NFKC", ch)
    if len(ch) != 1:
        return ""
    if ch in CYRILLIC_TO_LATIN:
        return CYRILLIC_TO_LATIN[ch]
    up = ch.upper()
    if up in CYRILLIC_TO_LATIN:
        return CYRILLIC_TO_LATIN[up]
    return up if up in ALPHABET else ""


def normalise_plate(text: str) -> str:
    """``"а 123 вс-77"`` -> ``"A123BC77"``: upper-case, Cyrillic look-alikes to Latin, separators dropped."""
    return "".join(fold_char(ch) for ch in text)
