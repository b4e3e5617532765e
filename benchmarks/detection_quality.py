"""Detection quality you measure: persons on labelled vtest frames, fire on rendered flames and hard
negatives, plates on two independent test sets, tripwire counts on a rendered clip.

    python -m benchmarks.detection_quality [--only persons,fire,plates,tripwire] [--threads 2]

Prints one table per part (each says how its labels were made) and writes
``artifacts/benchmarks/detection_quality.json``. Models come from the model
cache (``kuzet models build``); their raw outputs are cached under
``~/.cache/kuzet/quality`` so a re-run with other settings costs no inference.
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path
from typing import Any

from benchmarks.report import chosen, write_json
from core.config import KuzetConfig

OUT = Path("artifacts/benchmarks/detection_quality.json")
CACHE = Path("~/.cache/kuzet/quality").expanduser()
PARTS = ("persons", "fire", "plates", "tripwire")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(PARTS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--plate-frames", type=int, default=200, help="independent single frames")
    ap.add_argument("--plate-passes", type=int, default=40, help="independent vehicle passes (6 frames each)")
    ap.add_argument("--original-plates", type=int, default=360, help="images of the original generated set")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    parts = chosen(ap, args.only, PARTS, "part")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    cfg = KuzetConfig()
    res: dict[str, Any] = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "threads": args.threads, "load_average_at_start": [round(v, 2) for v in os.getloadavg()]},
    }  # fmt: skip
    if "persons" in parts:
        from benchmarks.quality import persons

        res["persons"] = persons.run(cfg, CACHE, args.threads)
        persons.print_table(res["persons"])
    if "fire" in parts:
        from benchmarks.quality import fire

        res["fire"] = fire.run(cfg, CACHE, args.threads)
        fire.print_table(res["fire"])
    if "plates" in parts:
        from benchmarks.quality import plates

        res["plates"] = plates.run(cfg, CACHE, args.threads, args.plate_frames, args.plate_passes, args.original_plates)
        plates.print_table(res["plates"])
    if "tripwire" in parts:
        from benchmarks.quality import tripwire

        res["tripwire"] = tripwire.run(cfg, args.threads)
        tripwire.print_table(res["tripwire"])
    write_json(args.out, res)


if __name__ == "__main__":
    main()
