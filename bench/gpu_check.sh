#!/usr/bin/env bash
# The GPU check, in one script: on a machine with an NVIDIA GPU, install the project with
# TensorFlow's CUDA build, run the tests marked `gpu` (tests/test_gpu.py: MirroredStrategy
# over two logical GPUs split from one, fp16 mixed precision with loss scaling, XLA against
# plain Keras, two train.py workers on 127.0.0.1), then time DDRNet-23-slim and PIDNet-S at
# 1024x2048 batch 1 in fp16 (Keras, Keras + XLA, and TensorRT through ONNX Runtime when
# `onnxruntime-gpu` and `tensorrt` install), and print one table. Within 8 minutes.
#
# Usage:
#   bench/gpu_check.sh            # on the GPU machine
#   bench/gpu_check.sh --smoke    # on a CPU: the same tests and timings, tiny, in the
#                                 # project's .venv (a default-suite test runs this)
#
# Environment: GPU_VENV (default .venv-gpu) is the GPU virtualenv, made with
# `docker/install_requirements.sh --gpu` when missing (needs PyPI); VENV (default .venv)
# is the one --smoke uses; CHECK_SECONDS (default 480) bounds the whole run.
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
if [[ "${1:-}" == "--smoke" ]]; then
    smoke=1
elif [[ $# -gt 0 ]]; then
    echo "usage: bench/gpu_check.sh [--smoke]" >&2
    exit 2
fi
budget=${CHECK_SECONDS:-480}
start=$SECONDS

left() { echo $(( budget - (SECONDS - start) )); }

echo "== $(date -u +%FT%TZ) $(uname -n): $(uptime)"
if ((smoke)); then
    venv=${VENV:-.venv}
    export CUDA_VISIBLE_DEVICES=""
    timing_flags=(--smoke)
else
    if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
        echo "error: no NVIDIA GPU here (nvidia-smi -L fails); on a CPU run: bench/gpu_check.sh --smoke" >&2
        exit 1
    fi
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    venv=${GPU_VENV:-.venv-gpu}
    if [[ ! -f "$venv/.installed" ]]; then
        timeout "$(left)" docker/install_requirements.sh --python "${PYTHON:-python3}" --dev --gpu "$venv"
        # TensorRT through ONNX Runtime is optional: timed only where these install.
        timeout "$(left)" "$venv/bin/pip" install -q onnxruntime-gpu tensorrt \
            || echo "note: onnxruntime-gpu/tensorrt did not install; TensorRT is left out"
        touch "$venv/.installed"
    fi
    timing_flags=()
fi
python=$venv/bin/python
if [[ ! -x "$python" ]]; then
    echo "error: $python not found; run make install first" >&2
    exit 1
fi
if ((!smoke)); then  # the smoke's device is the CPU; its timing table names it
    "$python" -c 'import tensorflow as tf; print("TensorFlow", tf.__version__, "devices:", [d.name for d in tf.config.list_physical_devices()])'
fi

echo "== tests marked gpu ($(left) s left)"
timeout "$(left)" "$python" -m pytest -p no:cacheprovider -q -m gpu tests/test_gpu.py

echo "== batch-1 latency ($(left) s left)"
timeout "$(left)" "$python" bench/gpu_latency.py "${timing_flags[@]}"
echo "== gpu check passed in $(( SECONDS - start )) s"
