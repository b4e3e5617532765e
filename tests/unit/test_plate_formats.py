"""Plate normalisation and format correction (plate_reader.normalize, plate_reader.formats)."""

from __future__ import annotations

from pathlib import Path

import pytest

from plate_reader.formats import FormatBook
from plate_reader.normalize import normalise_plate


@pytest.fixture(scope="module")
def book() -> FormatBook:
    return FormatBook.load()


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("123 abc 02", "123ABC02"),
        ("123-ABC-02", "123ABC02"),
        ("А123ВС77", "A123BC77"),  # Cyrillic letters, as typed on a Russian keyboard
        ("а 123 вс 777", "A123BC777"),
        ("ＫＺ１２３", "KZ123"),  # full-width forms from CJK-trained models
        ("12.3/A·B", "123AB"),
        ("", ""),
    ],
)
def test_normalise(raw: str, norm: str) -> None:
    assert normalise_plate(raw) == norm


@pytest.mark.parametrize(
    ("read", "plate", "fmt"),
    [
        ("123ABC02", "123ABC02", "kz-2012"),
        ("123A8C02", "123ABC02", "kz-2012"),  # 8 in a letter position -> B
        ("123ABCO2", "123ABC02", "kz-2012"),  # O in a digit position -> 0
        ("I23ABC02", "123ABC02", "kz-2012"),  # I -> 1
        ("1Z3ABC02", "123ABC02", "kz-2012"),  # Z -> 2
        ("12SABC02", "125ABC02", "kz-2012"),  # S -> 5
        ("KZ123ABC02", "123ABC02", "kz-2012"),  # the flag band's KZ is dropped
        ("123AB02", "123AB02", "kz-2012-legal"),
        ("A123BCD", "A123BCD", "kz-1993"),
        ("A123BC77", "A123BC77", "ru-2"),
        ("А123ВС77", "A123BC77", "ru-2"),
        ("A123BC777", "A123BC777", "ru-3"),
        ("4123BC77", "A123BC77", "ru-2"),  # 4 in a letter position -> A
        ("X259KC0S", "X259KC05", "ru-2"),
        ("8240JI10", "824OJI10", "kz-2012"),  # 0 in a letter position -> O (the first look-alike), not D
    ],
)
def test_correction(book: FormatBook, read: str, plate: str, fmt: str) -> None:
    match = book.correct_text(read)
    assert match is not None
    assert (match.text, match.format_id) == (plate, fmt)


def test_correction_counts_and_confidence(book: FormatBook) -> None:
    clean = book.correct_text("123ABC02")
    fixed = book.correct_text("I23A8CO2")
    assert clean is not None and fixed is not None
    assert clean.corrected == 0 and fixed.corrected == 3
    assert fixed.text == "123ABC02"
    assert fixed.confidence < clean.confidence


def test_probabilities_beat_lookalike_table(book: FormatBook) -> None:
    # the recogniser hesitated between 8 and B in a letter position and preferred 8:
    # its own second choice (B) must win over the look-alike route
    chars = [{"1": 0.99}, {"2": 0.99}, {"3": 0.99}, {"A": 0.95}, {"8": 0.6, "B": 0.35}, {"C": 0.97},
             {"0": 0.99}, {"2": 0.98}]  # fmt: skip
    best = book.match(chars, top_k=1)[0]
    assert best.text == "123ABC02"
    assert best.positions[4]["B"] > 0.5


def test_generic_fallback_and_too_short(book: FormatBook) -> None:
    match = book.correct_text("AB12")
    assert match is not None and match.format_id == "generic" and match.text == "AB12"
    assert book.correct_text("X1") is None


def test_region_not_listed_is_penalised(book: FormatBook) -> None:
    listed = book.correct_text("123ABC02")
    unlisted = book.correct_text("123ABC99")
    assert listed is not None and unlisted is not None
    assert unlisted.format_id == "kz-2012"  # still the best fit, but ranked lower than a known region
    assert unlisted.log_score < listed.log_score


def test_accepts_and_identify(book: FormatBook) -> None:
    assert book.get("kz-2012").accepts("123ABC02")
    assert not book.get("kz-2012").accepts("123ABC99")
    assert not book.get("kz-2012").accepts("A23ABC02")
    assert book.identify("A123BC777") == "ru-3"
    assert book.identify("ZZZZ") == "generic"


def test_bad_format_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\nclasses: {D: '0123456789'}\nformats:\n"
                   "  - {id: x, country: KZ, pattern: DDQ, prior: 1.0}\n")  # fmt: skip
    with pytest.raises(ValueError, match="undefined classes"):
        FormatBook.load(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("schema_version: 1\nclasses: {}\nformats: []\ncolour: red\n")
    with pytest.raises(ValueError, match="invalid"):
        FormatBook.load(unknown)
