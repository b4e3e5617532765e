"""Pre-processing as a tiny ONNX graph, so that it runs on the GPU next to the model.

The decoded frames go to the device once, as uint8 (a quarter of the bytes
of the float input); channel order, resize, letterbox padding and scaling
then run on the GPU, and the model's input never comes back to the host
(the detector binds it with IO binding). The geometry (new size and
padding) is computed on the host with the same functions as the CPU path
(:mod:`detectors.preprocess`), so boxes map back identically.

On the CPU the same graph runs with onnxruntime's CPU provider, which is how
the tests check it against :class:`detectors.preprocess.Preprocessor`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper

from detectors.preprocess import PAD_VALUE, Transform, letterbox_geometry, rect_canvas

FRAMES, SIZES, PADS, OUTPUT = "frames", "sizes", "pads", "input"
_OPSET = 18


def build_graph(
    resize: Literal["stretch", "letterbox"],
    layout: Literal["nhwc", "nchw"],
    dtype: Literal["uint8", "float32"],
    color: Literal["rgb", "bgr"],
    resample: Literal["opencv", "tf-asymmetric"] = "opencv",
) -> bytes:
    """A serialised ONNX model: ``frames`` uint8 (B, H, W, 3) BGR, ``sizes`` int64 [B, 3, h, w] and
    ``pads`` int64 [8] -> ``input`` as the detector wants it."""
    if layout == "nchw" and dtype != "float32":
        raise ValueError("nchw input is produced as float32 only")
    nodes = [
        helper.make_node("Cast", [FRAMES], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["f"], ["chw"], perm=[0, 3, 1, 2]),
    ]
    src = "chw"
    consts = {
        "bgr2rgb": helper.make_tensor("bgr2rgb", TensorProto.INT64, [3], [2, 1, 0]),
        "pad_value": helper.make_tensor("pad_value", TensorProto.FLOAT, [], [float(PAD_VALUE)]),
        "inv255": helper.make_tensor("inv255", TensorProto.FLOAT, [], [1.0 / 255.0]),
        "lo": helper.make_tensor("lo", TensorProto.FLOAT, [], [0.0]),
        "hi": helper.make_tensor("hi", TensorProto.FLOAT, [], [255.0]),
    }
    if color == "rgb":
        nodes.append(helper.make_node("Gather", [src, "bgr2rgb"], ["rgb"], axis=1))
        src = "rgb"
    mode = "asymmetric" if resample == "tf-asymmetric" else "half_pixel"
    resize_node = helper.make_node(
        "Resize", [src, "", "", SIZES], ["resized"], mode="linear", coordinate_transformation_mode=mode
    )
    nodes.append(resize_node)
    src = "resized"
    if resize == "letterbox":
        nodes.append(helper.make_node("Pad", [src, PADS, "pad_value"], ["padded"], mode="constant"))
        src = "padded"
    out_shape: list[str | int | None]
    if dtype == "float32":
        nodes.append(helper.make_node("Mul", [src, "inv255"], [OUTPUT]))
        out_type, out_shape = TensorProto.FLOAT, ["B", 3, "h", "w"]
    else:  # uint8 NHWC, rounded as OpenCV rounds
        nodes += [
            helper.make_node("Round", [src], ["rounded"]),
            helper.make_node("Clip", ["rounded", "lo", "hi"], ["clipped"]),
            helper.make_node("Transpose", ["clipped"], ["hwc"], perm=[0, 2, 3, 1]),
            helper.make_node("Cast", ["hwc"], [OUTPUT], to=TensorProto.UINT8),
        ]
        out_type, out_shape = TensorProto.UINT8, ["B", "h", "w", 3]
    graph = helper.make_graph(
        nodes,
        "kuzet_preprocess",
        [
            helper.make_tensor_value_info(FRAMES, TensorProto.UINT8, ["B", "H", "W", 3]),
            helper.make_tensor_value_info(SIZES, TensorProto.INT64, [4]),
            helper.make_tensor_value_info(PADS, TensorProto.INT64, [8]),
        ],
        [helper.make_tensor_value_info(OUTPUT, out_type, out_shape)],
        initializer=[t for name, t in consts.items() if any(name in n.input for n in nodes)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def geometry(
    images: Sequence[npt.NDArray[np.uint8]],
    size: int,
    resize: Literal["stretch", "letterbox"],
    rect_stride: int | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], list[Transform]]:
    """``sizes``, ``pads`` and per-frame transforms for a batch of frames that share one shape."""
    shapes = {img.shape for img in images}
    if len(shapes) != 1:
        raise ValueError("a device pre-processing batch holds frames of one shape; group frames by shape first")
    h, w = int(images[0].shape[0]), int(images[0].shape[1])
    n = len(images)
    if resize == "stretch":
        tr = Transform(size / w, size / h, 0.0, 0.0, w, h)
        return np.array([n, 3, size, size], np.int64), np.zeros(8, np.int64), [tr] * n
    cw, ch = rect_canvas(w, h, size, rect_stride) if rect_stride else (size, size)
    _, new_w, new_h, left, top = letterbox_geometry(w, h, size, (cw, ch))
    pads = np.array([0, 0, top, left, 0, 0, ch - new_h - top, cw - new_w - left], np.int64)
    tr = Transform(new_w / w, new_h / h, float(left), float(top), w, h)
    return np.array([n, 3, new_h, new_w], np.int64), pads, [tr] * n
