"""The cost of a model: parameters and floating-point operations (FLOPs).

FLOPs follow the convention of the papers and of fvcore/mmcv: one
multiply-add counts as 2 FLOPs (GFLOPs = 2 x GMACs), measured for one image
(batch 1) at a given size in inference mode. They come from TensorFlow's
profiler (`tf.compat.v1.profiler`) run on the graph of the model's concrete
function: every op whose FLOPs TensorFlow registers is counted - convolutions
(regular, dilated, depthwise), matrix products, bias additions and the
element-wise arithmetic of BatchNorm and residual additions - while resizes,
pooling windows and activations count 0 (TensorFlow registers no statistics for
them). For DDRNet-23-slim with 19 classes at 480x640 this gives 10.687 GFLOPs,
against the 10.65 the paper reports.

Example:

    model = models.build_model("ddrnet23_slim", num_classes=19)
    count_params(model)                  # {"trainable": 5695987, "total": 5715827}
    count_flops(model, (480, 640)) / 1e9 # 10.687
"""

import logging

import keras
import numpy as np
import tensorflow as tf


def count_params(model):
    """Numbers of parameters of a Keras model.

    Args:
        model: a `keras.Model` (or layer).

    Returns:
        dict `{"trainable": int, "total": int}`: the elements of the trainable
        weights, and of all weights (trainable, BatchNorm moving statistics and
        any other non-trainable state).
    """
    trainable = sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)
    total = sum(int(np.prod(weight.shape)) for weight in model.weights)
    return {"trainable": trainable, "total": total}


def count_flops(model, image_size, channels=3):
    """FLOPs (2 x multiply-adds) of one forward pass at batch 1, inference mode.

    A model with several outputs (e.g. `aux_head=True`) is measured for its first
    output only: the auxiliary heads serve training and do not run at inference.

    Args:
        model: a `keras.Model` taking float32 `(B, H, W, channels)` images.
        image_size: `(height, width)` ints, the input size.
        channels: int, input channels.

    Returns:
        int, the total FLOPs TensorFlow's profiler counts in the graph (see the
        module docstring for what is counted).

    Raises:
        ValueError: for an `image_size` that is not two positive ints.
    """
    if len(image_size) != 2 or min(int(size) for size in image_size) < 1:
        raise ValueError(
            f"`image_size` must be (height, width) positive ints. Received: {image_size!r}"
        )
    outputs = getattr(model, "outputs", None)
    if isinstance(model, keras.Model) and outputs and len(outputs) > 1:
        model = keras.Model(model.inputs, outputs[0])
    height, width = (int(size) for size in image_size)
    spec = tf.TensorSpec([1, height, width, int(channels)], tf.float32)
    concrete = tf.function(lambda images: model(images, training=False)).get_concrete_function(spec)
    options = (
        tf.compat.v1.profiler.ProfileOptionBuilder(
            tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        )
        .with_empty_output()
        .build()
    )
    # The v1 profiler logs a deprecation notice of its own internals; nothing to act on.
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    try:
        profile = tf.compat.v1.profiler.profile(
            graph=concrete.graph,
            run_meta=tf.compat.v1.RunMetadata(),
            cmd="op",
            options=options,
        )
    finally:
        tf_logger.setLevel(level)
    return int(profile.total_float_ops)


def measure_cost(predictor, cost_model, latency_runs=50, batch_size=1):
    """Parameters, FLOPs at the evaluation size, batch-1 latency and optional throughput.

    Args:
        predictor: the `Predictor` being evaluated; its runtime is timed.
        cost_model: the Keras model whose parameters and FLOPs are counted (the
            predictor's own, or the run's checkpoint for an exported model).
        latency_runs: timed batch-1 calls.
        batch_size: when above 1, also the images per second at this batch size.

    Returns:
        dict with `model`, `runtime`, `params`, `flops`, `macs`, `latency_ms`,
        `fps`, `device`, `threads`, `image_size` and, for `batch_size > 1`, `throughput`.
    """
    from semseg.runtime import latency

    size, channels = predictor.image_size, predictor.num_channels
    flops = count_flops(cost_model, size, channels)
    timing = latency.measure_latency(predictor.runtime, size, channels, runs=latency_runs)
    values = {
        "model": cost_model.name,
        "runtime": predictor.runtime.name,
        "params": count_params(cost_model),
        "flops": int(flops),
        "macs": flops / 2,
        "image_size": list(size),
        "latency_ms": {key: timing[key] for key in ("mean", "p50", "p95")},
        "fps": timing["fps"],
        "device": timing["device"],
        "threads": timing["threads"],
    }
    if batch_size > 1:
        throughput = latency.measure_latency(
            predictor.runtime,
            size,
            channels,
            batch_size=batch_size,
            runs=max(latency_runs // 5, 10),
        )
        values["throughput"] = {
            "batch_size": batch_size,
            "fps": throughput["fps"],
            "latency_ms": {key: throughput[key] for key in ("mean", "p50", "p95")},
        }
    return values
