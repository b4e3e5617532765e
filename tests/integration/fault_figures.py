"""Where the fault tests put their figures: printed, and merged into ``var/fault-figures.json``.

Each fault (broker down, PostgreSQL down, S3 down, disk full, corrupt spool) reports what was lost,
what was duplicated after dedupe, how long recovery took and what an operator saw; the issue's note
quotes this file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[2] / "var" / "fault-figures.json"


def record(name: str, figures: dict[str, Any]) -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    try:
        doc = json.loads(OUT.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        doc = {}
    doc[name] = figures
    OUT.write_text(json.dumps(doc, indent=1, default=str), encoding="utf-8")
    print(f"\nFAULT {name}: {json.dumps(figures, default=str)}")
