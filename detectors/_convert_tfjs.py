"""Convert a TF.js graph model to ONNX; run as a subprocess by the model cache builder.

tf2onnx reads TF.js graphs itself (``--tfjs``), but the pinned tf2onnx 1.17
cannot read the human-models graphs as shipped, for three reasons fixed here
rather than by patching site-packages:

* it calls ``np.product``, removed in numpy 2 (the shared venv has numpy 2);
* the TF.js converter drops attributes that TensorFlow 2.21 insists on when
  tf2onnx re-imports single nodes to infer shapes: ``TArgs`` of
  ``_FusedConv2D`` (the types of its ``num_args`` fused inputs, all the node's
  ``T``) and ``index_type`` of ``TopKV2`` (int32, TensorFlow's default);
* TF.js graphs take float32 pixels, some normalised and channels-first, and
  Kuzet's NHWC preprocessing hands a model uint8: ``--uint8-input`` puts a
  Cast (then ``(x - mean) / std`` with ``--mean``/``--std``, then a transpose
  with ``--nchw``) in front of the graph input, so the worker passes its
  batch buffer as is and the normalisation runs inside onnxruntime.

Usage: python -m detectors._convert_tfjs MODEL.json DST.onnx --opset N
       [--input NAME:0[-1,H,W,3]] [--output NAME]... [--uint8-input [--mean M,M,M --std S,S,S] [--nchw]]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

_FUSED_WITH_ARGS = {"_FusedConv2D", "_FusedMatMul"}


def patch_graph(model: dict[str, Any]) -> int:
    """Add the attributes TensorFlow needs and TF.js dropped; returns how many nodes were patched."""
    patched = 0
    for node in model["modelTopology"]["node"]:
        attr = node.setdefault("attr", {})
        if node["op"] in _FUSED_WITH_ARGS and "TArgs" not in attr:
            dtype = attr.get("T", {}).get("type", "DT_FLOAT")
            attr["TArgs"] = {"list": {"type": [dtype] * int(attr.get("num_args", {}).get("i", "0"))}}
            patched += 1
        elif node["op"] == "TopKV2" and "index_type" not in attr:
            attr["index_type"] = {"type": "DT_INT32"}
            patched += 1
    return patched


def uint8_input_adapter(path: Path, mean: list[float], std: list[float], nchw: bool) -> None:
    """Make the (single) float graph input a uint8 NHWC input: Cast, optional normalisation and transpose."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    if len(graph.input) != 1:
        raise SystemExit(f"--uint8-input needs a single-input graph, {path.name} has {len(graph.input)}")
    inp = graph.input[0]
    name = inp.name
    nodes = [helper.make_node("Cast", [name], [f"{name}__f32"], to=TensorProto.FLOAT, name="adapter_cast")]
    tail = f"{name}__f32"
    if mean or std:
        for op, values in (("Sub", mean or [0.0, 0.0, 0.0]), ("Div", std or [1.0, 1.0, 1.0])):
            const = numpy_helper.from_array(np.asarray(values, np.float32), f"adapter_{op.lower()}_value")
            graph.initializer.append(const)
            nodes.append(helper.make_node(op, [tail, const.name], [f"{name}__{op.lower()}"], name=f"adapter_{op}"))
            tail = f"{name}__{op.lower()}"
    if nchw:
        nodes.append(helper.make_node("Transpose", [tail], [f"{name}__nchw"], perm=[0, 3, 1, 2], name="adapter_nchw"))
        tail = f"{name}__nchw"
    for node in graph.node:
        node.input[:] = [tail if i == name else i for i in node.input]
    for i, node in enumerate(nodes):
        graph.node.insert(i, node)
    dims = inp.type.tensor_type.shape.dim
    if nchw:  # the new input is N, H, W, C
        shape = [dims[0], dims[2], dims[3], dims[1]]
        copies = [onnx.TensorShapeProto.Dimension() for _ in shape]
        for new, old in zip(copies, shape, strict=True):
            new.CopyFrom(old)
        del dims[:]
        dims.extend(copies)
    inp.type.tensor_type.elem_type = TensorProto.UINT8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")] if text else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("src", type=Path, help="the TF.js model.json (its weight files next to it)")
    parser.add_argument("dst", type=Path)
    parser.add_argument("--opset", type=int, required=True)
    parser.add_argument("--input", action="append", default=[], help="input name with an optional [shape]")
    parser.add_argument("--output", action="append", default=[], help="keep only these outputs")
    parser.add_argument("--uint8-input", action="store_true")
    parser.add_argument("--mean", type=_floats, default=[], help="per-channel mean subtracted after the cast")
    parser.add_argument("--std", type=_floats, default=[], help="per-channel std divided by after the mean")
    parser.add_argument("--nchw", action="store_true", help="the graph input is channels-first")
    args = parser.parse_args(argv)

    import numpy as np

    if not hasattr(np, "product"):  # tf2onnx 1.17's tfjs reader still calls it
        np.product = np.prod  # type: ignore[attr-defined]
    from tf2onnx import convert

    model = json.loads(args.src.read_text(encoding="utf-8"))
    print(f"patched {patch_graph(model)} node(s) of {args.src.name}")
    patched = args.src.with_name(f"patched-{args.src.name}")  # next to the source: weight paths are relative
    patched.write_text(json.dumps(model), encoding="utf-8")
    cli = ["--tfjs", str(patched), "--output", str(args.dst), "--opset", str(args.opset)]
    if args.input:
        cli += ["--inputs", ",".join(args.input)]
    if args.output:
        cli += ["--outputs", ",".join(args.output)]
    sys.argv = ["tf2onnx.convert", *cli]
    convert.main()
    if args.uint8_input:
        uint8_input_adapter(args.dst, args.mean, args.std, args.nchw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
