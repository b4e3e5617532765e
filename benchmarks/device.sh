#!/usr/bin/env bash
# Device benchmark, one script, at most 8 minutes on one NVIDIA GPU:
#   benchmarks/device.sh RESULTS_DIR
# installs the gpu extra into its own venv, builds the TensorRT engines, measures bare-model frames/s for
# person, fire and plate at batch 1-64, NVDEC streams at 5 analysed fps (1080p25 H.264 made here with
# ffmpeg), JPEG on the GPU, and the whole worker on N generated 1080p streams with GPU utilisation (NVML);
# writes device.json and device.png into RESULTS_DIR. Models come from $KUZET_MODEL_CACHE
# (default ~/.cache/kuzet/models, built by `kuzet models build`).
# On a machine without CUDA it stops at once, with exit status 2, before installing anything.
set -euo pipefail

out="${1:-}"
if [[ -z "$out" ]]; then
  echo "usage: benchmarks/device.sh RESULTS_DIR" >&2
  exit 64
fi
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
  echo "device.sh: no CUDA GPU on this machine (nvidia-smi is missing or lists no GPU); this benchmark needs one." >&2
  echo "device.sh: nothing was installed or measured. Run it where \`nvidia-smi -L\` lists a GPU." >&2
  exit 2
fi
command -v ffmpeg >/dev/null || { echo "device.sh: ffmpeg is needed to make the 1080p test stream" >&2; exit 3; }

start=$SECONDS
repo="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
venv="${KUZET_GPU_VENV:-/tmp/kuzet-gpu-venv}"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null || python=python3
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$out/nvidia-smi.csv"

echo "[device] installing the gpu extra into $venv"
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
timeout 240 "$venv/bin/pip" install -q "$repo[gpu,dev]"
# onnxruntime and onnxruntime-gpu share onnxruntime/: the GPU build goes in last
timeout 120 "$venv/bin/pip" install -q --force-reinstall --no-deps onnxruntime-gpu==1.24.4
"$venv/bin/python" -c "import onnxruntime as o; print('[device] providers', o.get_available_providers())"
echo "[device] install took $((SECONDS - start)) s"

video="$out/1080p25-g5.mp4"
if [[ ! -s "$video" ]]; then
  ffmpeg -v error -y -f lavfi -i "testsrc2=size=1920x1080:rate=25" -t 20 -c:v libx264 -preset veryfast \
    -g 5 -keyint_min 5 -sc_threshold 0 -pix_fmt yuv420p "$video"
fi

left=$((480 - (SECONDS - start)))
if (( left < 120 )); then
  echo "device.sh: only ${left} s left of the 8 minutes after the install; not starting the measurements" >&2
  exit 4
fi
cd "$repo"
PYTHONPATH="$repo" timeout "$left" "$venv/bin/python" -m benchmarks.device_bench --out "$out" --video "$video"
echo "[device] done in $((SECONDS - start)) s; results in $out"
