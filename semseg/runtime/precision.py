"""Numeric precision of training and inference: fp32, bf16, fp16 and int8.

Keras runs reduced precision through a dtype policy: variables stay float32,
layers compute in bfloat16 (`"mixed_bfloat16"`) or float16 (`"mixed_float16"`),
and the models' `logits` layers compute in float32. On CPUs with AVX512-BF16
(AMD Zen 4, Intel Sapphire Rapids) oneDNN runs bf16 convolutions natively, so
`bf16` trains and infers faster than `fp32`; `fp16` is for GPUs (CPUs without
AVX512-FP16 emulate it slowly). `int8` exists only for exported TFLite and ONNX
models (see `semseg.export.export`).

| precision | Keras policy       | training | Keras inference | TFLite | ONNX |
|-----------|--------------------|----------|-----------------|--------|------|
| `fp32`    | `"float32"`        | yes      | yes             | yes    | yes  |
| `bf16`    | `"mixed_bfloat16"` | yes      | yes             | -      | -    |
| `fp16`    | `"mixed_float16"`  | GPU      | GPU             | yes    | -    |
| `int8`    | -                  | -        | -               | yes    | yes  |

Example:

    set_precision_policy("bf16")   # before building the model to train
    model = models.build_model("ddrnet23_slim", 11)

    fast = cast_model(trained_model, "bf16")   # inference copy, same weights
"""

import contextlib
import logging

import keras

from semseg.base.cpu import cpu_flags
from semseg.base.errors import InputError

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
# fp64 is for numerical checks of training (train.py --float64), not for inference.
KERAS_POLICIES = {
    "fp32": "float32",
    "bf16": "mixed_bfloat16",
    "fp16": "mixed_float16",
    "fp64": "float64",
}

logger = logging.getLogger(__name__)


def keras_policy(precision):
    """The Keras dtype policy name of `precision` (`"fp32"`, `"bf16"`, `"fp16"` or `"fp64"`).

    Raises:
        InputError: for `"int8"` (an export option, not a Keras policy) or an
            unknown name.
    """
    if precision not in KERAS_POLICIES:
        if precision == "int8":
            raise InputError(
                "int8 is a quantization of exported TFLite / ONNX models, not a Keras "
                "precision; use fp32, bf16 or fp16 here"
            )
        raise InputError(
            f"precision must be one of {', '.join(KERAS_POLICIES)}. Received: {precision!r}"
        )
    return KERAS_POLICIES[precision]


def set_precision_policy(precision):
    """Sets the global Keras dtype policy for models built from now on.

    Call it before building a model: `"bf16"` makes layers compute in bfloat16
    with float32 variables (mixed precision), `"fp64"` makes variables and
    computation float64 (training checks), `"fp32"` restores the default.
    Training code should wrap its optimizer for `"fp16"` (Keras `compile` does
    this with a `LossScaleOptimizer` automatically).

    Args:
        precision: `"fp32"`, `"bf16"`, `"fp16"` or `"fp64"`.

    Returns:
        The name of the previous global policy (e.g. `"float32"`), to restore it.
    """
    policy = keras_policy(precision)
    previous = keras.config.dtype_policy().name
    keras.config.set_dtype_policy(policy)
    if precision == "bf16" and not _cpu_has_bf16():
        logger.warning("bf16 without AVX512-BF16 or a GPU is emulated and usually slower")
    return previous


@contextlib.contextmanager
def precision_policy(precision):
    """Context manager: the global dtype policy of `precision` inside, the old one after."""
    previous = set_precision_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def cast_model(model, precision):
    """An inference copy of `model` computing in `precision`, sharing no state with it.

    The copy is rebuilt from the model's config under the precision's dtype
    policy and gets the model's weights (float32 variables), so its logits are
    those of the original up to bf16/fp16 rounding. Layers the original pins to
    float32 (such as the models' `logits` layers) stay float32.

    A model of the zoo rebuilds through its class (`from_config(get_config())`),
    so it keeps its float32 logits layer; a plain functional model records each
    layer's policy, so all its layers move to the new policy (its outputs are
    then bf16/fp16, which the runtimes cast back to float32).

    Args:
        model: a `keras.Model` from `models.build_model`, any model whose class
            rebuilds from `get_config()`, or a plain functional model.
        precision: `"fp32"`, `"bf16"` or `"fp16"`.

    Returns:
        A `keras.Model`; `model` itself when it already computes in that precision.
    """
    policy = keras_policy(precision)
    if model.dtype_policy.name == policy:
        return model
    with precision_policy(precision):
        if type(model).__module__.startswith("keras."):  # Functional or Sequential
            copy = keras.models.clone_model(
                model, clone_function=lambda layer: _clone_layer(layer, policy)
            )
        else:
            copy = model.__class__.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def _clone_layer(layer, policy):
    config = layer.get_config()
    if not isinstance(layer, keras.layers.InputLayer):
        config["dtype"] = policy
    return layer.__class__.from_config(config)


# Compute capability from which NVIDIA GPUs have float16 tensor cores (Volta).
FP16_COMPUTE_CAPABILITY = (7, 0)


def _gpu_compute_capability():
    """`(major, minor)` of the first visible GPU, `None` without a GPU (or unknown)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
    return tuple(capability) if capability else (0, 0)


def mixed_precision_support():
    """The reduced precision this machine trains faster in, or why it has none.

    Returns:
        `(precision, missing)`: `("fp16", None)` on a GPU with float16 tensor cores
        (compute capability 7.0 or newer), `("bf16", None)` on a CPU with AVX512_BF16
        or AMX-BF16; else `(None, missing)`, `missing` saying what the hardware lacks.
    """
    capability = _gpu_compute_capability()
    if capability is not None:
        if capability >= FP16_COMPUTE_CAPABILITY:
            return "fp16", None
        return None, (
            f"this GPU (compute capability {capability[0]}.{capability[1]}) has no float16 "
            "tensor cores"
        )
    if {"avx512_bf16", "amx_bf16"} & cpu_flags():
        return "bf16", None
    return None, (
        "this CPU has neither AVX512_BF16 nor AMX-BF16, so bfloat16 would be emulated "
        "(8 to 10 times slower than float32 on an AVX2 EPYC, bench/RESULTS.md)"
    )


def _cpu_has_bf16():
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return True
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())
