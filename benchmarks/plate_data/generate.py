"""Generate the plate test set: rendered KZ and RU plates pasted into photos, with labels.

Deterministic (one seed drives every random choice), written to a cache
directory (never committed) and reused when it is already there::

    python -m benchmarks.plate_data.generate --n 360 --seed 2024

Each image holds one plate, on a simple car rear (most) or bare (a fifth),
pasted into a frame of ``vtest.avi`` or ultralytics' ``bus.jpg``/``zidane.jpg``
with perspective, blur, noise, lighting change and JPEG compression. The
fonts rotate through OpenCV's Hershey fonts and the TrueType fonts installed.
``labels.jsonl`` holds, per image, the plate text, its format, the layout,
the font and the plate's box and corners.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from plate_reader.synthetic import available_fonts, backgrounds, place_plate, random_plate, render_plate

DEFAULT_DIR = Path("~/.cache/kuzet/plate_data").expanduser()
BARE_SHARE = 0.2


def dataset_dir(n: int, seed: int, root: Path = DEFAULT_DIR) -> Path:
    return Path(root).expanduser() / f"v1-n{n}-seed{seed}"


def generate(n: int = 360, seed: int = 2024, root: Path = DEFAULT_DIR, force: bool = False) -> Path:
    """Write ``n`` images and ``labels.jsonl`` (skipped when a complete set is already there)."""
    out = dataset_dir(n, seed, root)
    labels = out / "labels.jsonl"
    if labels.exists() and not force and sum(1 for _ in labels.open()) == n:
        return out
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    fonts = available_fonts()
    bgs = backgrounds(max_video_frames=40)
    rows = []
    for i in range(n):
        spec = random_plate(rng)
        font = fonts[i % len(fonts)]
        plate = render_plate(spec, font, rng)
        bg = bgs[int(rng.integers(0, len(bgs)))]
        bare = bool(rng.random() < BARE_SHARE)
        placed = place_plate(bg, plate, rng, with_car=not bare)
        name = f"images/{i:04d}.jpg"
        cv2.imwrite(str(out / name), placed.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        rows.append({
            "file": name, "plate": spec.text, "format_id": spec.format_id, "layout": spec.layout, "font": font,
            "on_car": not bare, "xyxy": [round(v, 1) for v in placed.xyxy],
            "quad": np.round(placed.quad, 1).tolist(),
        })  # fmt: skip
    tmp = labels.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(labels)
    return out


def load(directory: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (directory / "labels.jsonl").read_text(encoding="utf-8").splitlines()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=360)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--root", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    print(generate(args.n, args.seed, args.root, args.force))


if __name__ == "__main__":
    main()
