"""Timing a model: batch-1 latency and batch throughput at a given input size.

Example:

    stats = measure_latency(model, image_size=(480, 640), runs=50)
    stats["p50"], stats["fps"]
"""

import os
import time

import keras
import numpy as np
import tensorflow as tf

from semseg.base.cpu import cpu_name

# Runtimes of `semseg.runtime.runtimes` that take numpy arrays (the others take tensors).
NUMPY_RUNTIMES = ("tflite", "onnx")


def device_description():
    """The device TensorFlow runs on and its thread count, e.g. `{"device": "AMD EPYC (CPU)",
    "threads": 2}`; the first GPU's name when one is visible."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        name = f"{details.get('device_name', 'GPU')} (GPU)"
    else:
        name = f"{cpu_name()} (CPU)"
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    return {"device": name, "threads": int(threads)}


def time_function(function, runs=50, warmup=10):
    """Calls `function()` `warmup` times untimed, then `runs` times timed.

    `function` must block until its result is ready (e.g. call `.numpy()`).

    Returns:
        float64 array of `runs` durations in milliseconds.
    """
    if runs < 1:
        raise ValueError(f"runs must be at least 1. Received: runs={runs}")
    for _ in range(warmup):
        function()
    durations = np.empty(runs)
    for index in range(runs):
        start = time.perf_counter()
        function()
        durations[index] = (time.perf_counter() - start) * 1000.0
    return durations


def summarize(durations, batch_size=1):
    """Mean, p50 and p95 of durations in ms, and images per second at the median."""
    p50 = float(np.percentile(durations, 50))
    return {
        "mean": float(np.mean(durations)),
        "p50": p50,
        "p95": float(np.percentile(durations, 95)),
        "runs": int(len(durations)),
        "fps": 1000.0 * batch_size / p50,
    }


def measure_latency(forward, image_size, channels=3, batch_size=1, runs=50, warmup=10):
    """Times a model's forward pass on random input.

    Args:
        forward: a Keras model or a runtime from `semseg.runtime.runtimes` (any callable
            from float32 `(B, H, W, channels)` pixels to logits).
        image_size: `(height, width)`.
        channels: input channels.
        batch_size: images per call; `fps` counts images, so batch > 1 gives throughput.
        runs: timed calls (at least 50 for a stable p95).
        warmup: untimed calls first (tracing, memory allocation, oneDNN kernel choice).

    Returns:
        dict `mean`, `p50`, `p95` (ms per call), `runs`, `fps` (images per second
        at the median), `batch_size`, plus `device` and `threads`.
    """
    from semseg.runtime.runtimes import KerasRuntime

    if isinstance(forward, keras.Model):
        forward = KerasRuntime(forward, channels)
    images = tf.random.uniform((batch_size, *image_size, channels), 0.0, 255.0, seed=0)
    if getattr(forward, "name", None) in NUMPY_RUNTIMES:
        images = images.numpy()  # their native input: no conversion inside the timing
    fixed_size = getattr(forward, "fixed_size", None)
    if fixed_size is not None and tuple(fixed_size) != tuple(image_size):
        raise ValueError(
            f"this model runs at {forward.fixed_size} only. Received: image_size={image_size}"
        )

    def call():
        outputs = forward(images)
        return outputs.numpy() if hasattr(outputs, "numpy") else np.asarray(outputs)

    stats = summarize(time_function(call, runs, warmup), batch_size)
    stats["batch_size"] = batch_size
    stats.update(device_description())
    return stats
