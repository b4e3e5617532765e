"""Export an ultralytics .pt to ONNX; run as a subprocess by the model cache builder.

A separate process because loading torch and unpickling third-party layers
(``pre_import``) should not leave state in the caller, and so that a crash in
export cannot take the CLI down with a half-written cache.
Usage: python -m detectors._export_ultralytics SRC.pt DST.onnx --opset N --imgsz S [--pre-import MOD]...
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--opset", type=int, required=True)
    parser.add_argument("--imgsz", type=int, required=True)
    parser.add_argument("--pre-import", action="append", default=[])
    parser.add_argument("--static-batch", action="store_true")
    args = parser.parse_args(argv)
    os.environ["YOLO_OFFLINE"] = "1"  # no hub checks, no asset downloads
    for module in args.pre_import:
        importlib.import_module(module)
    from ultralytics import YOLO  # type: ignore[attr-defined]

    model = YOLO(str(args.src), task="detect")
    # simplify=False: onnxslim is not a dependency, and ultralytics would try to pip-install it.
    out = model.export(
        format="onnx",
        opset=args.opset,
        dynamic=not args.static_batch,
        simplify=False,
        imgsz=args.imgsz,
        batch=1,
        device="cpu",
        half=False,
        nms=False,
        verbose=False,
    )
    shutil.move(str(out), args.dst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
