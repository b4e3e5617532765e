"""The GPU path: TensorRT/CUDA providers with an engine cache, on-device pre-processing, NVDEC, nvJPEG.

Everything here needs the ``gpu`` extra (onnxruntime-gpu, tensorrt, PyNvVideoCodec,
nvidia-nvimgcodec) except the pure parts (engine cache keys, the
pre-processing graph), which are tested on the CPU. Nothing in this package
is imported on the CPU path.
"""
