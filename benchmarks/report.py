"""What the accuracy and cost benchmarks share around their measurements: picking parts by name, writing JSON."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def chosen(ap: argparse.ArgumentParser, value: str, known: Sequence[str], what: str) -> list[str]:
    """The comma-separated names in ``value``; an unknown one stops the run with the known ones listed."""
    names = [n for n in value.split(",") if n]
    unknown = sorted(set(names) - set(known))
    if unknown:
        ap.error(f"unknown {what}(s) {unknown}; known: {', '.join(known)}")
    return names


def write_json(path: Path, result: Any) -> None:
    """The run's figures as indented JSON at ``path`` (times and paths as text); says where it wrote them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nwrote {path}")
