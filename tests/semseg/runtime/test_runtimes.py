"""Runtimes and precision paths give the logits of the Keras model they come from."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import models
from semseg.base.errors import InputError
from semseg.export import export
from semseg.runtime import precision
from semseg.runtime.runtimes import (
    KerasRuntime,
    SavedModelRuntime,
    XlaRuntime,
    fold_batch_norms,
    load_runtime,
)

SIZE = (72, 88)  # 1/64 -> 1/8 upsampling is non-integer here (2 -> 9, 2 -> 11)


def randomize_batch_norms(model, seed=0):
    """Moving statistics, gamma and beta far from their initial values, so folding matters."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0.0, 0.5, channels))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, channels))
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, channels))
            if layer.center:
                layer.beta.assign(rng.normal(0.0, 0.2, channels))


def count_batch_norms(model):
    return sum(
        isinstance(layer, keras.layers.BatchNormalization) for layer in model._flatten_layers()
    )


@pytest.fixture(scope="module")
def ddrnet():
    keras.utils.set_random_seed(1)
    model = models.build_model("ddrnet23_slim", 5, input_shape=(None, None, 3))
    randomize_batch_norms(model)
    return model


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 255, (2, *SIZE, 3)).astype(np.float32)


def max_relative_difference(actual, expected):
    """Largest absolute difference relative to the largest logit (oneDNN reorders sums)."""
    expected = np.asarray(expected)
    return float(np.max(np.abs(np.asarray(actual) - expected)) / np.max(np.abs(expected)))


def test_folded_ddrnet_equals_the_original(ddrnet, images):
    expected = ddrnet(images, training=False).numpy()
    nodes_before = {layer.name: len(layer._inbound_nodes) for layer in ddrnet.layers}
    folded = fold_batch_norms(ddrnet)
    # 55 batch norms: 12 pre-activation ones stay, and 8 before a shared Add (grappler bug).
    assert count_batch_norms(ddrnet) == 55
    assert count_batch_norms(folded) == 20
    assert max_relative_difference(folded(images, training=False), expected) < 1e-5
    # The original is untouched: same layers, no extra graph nodes, same outputs.
    assert {layer.name: len(layer._inbound_nodes) for layer in ddrnet.layers} == nodes_before
    np.testing.assert_array_equal(ddrnet(images, training=False).numpy(), expected)


def test_folding_handles_bias_depthwise_and_partial_batch_norms(images):
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=True)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)
    x = keras.layers.BatchNormalization(center=False)(x)
    shared = keras.layers.Conv2D(4, 1)(x)  # used twice: cannot fold
    y = keras.layers.BatchNormalization(scale=False)(shared)
    outputs = keras.layers.Concatenate()([y, shared])
    model = keras.Model(inputs, outputs)
    randomize_batch_norms(model, seed=3)
    folded = fold_batch_norms(model)
    assert count_batch_norms(folded) == 1
    expected = model(images, training=False).numpy()
    assert max_relative_difference(folded(images, training=False), expected) < 1e-5


def test_models_without_batch_norms_are_returned_as_they_are():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    assert fold_batch_norms(model) is model


def test_keras_runtime_traces_each_size_statically(ddrnet, images):
    runtime = KerasRuntime(ddrnet, 3)
    for size in (SIZE, (50, 61)):
        batch = tf.image.resize(images, size).numpy()
        expected = ddrnet(batch, training=False).numpy()
        logits = runtime(batch).numpy()
        assert logits.shape == (2, *size, 5) and logits.dtype == np.float32
        assert max_relative_difference(logits, expected) < 1e-5
    # One graph per size, with static height and width (so resizes take the static path).
    assert set(runtime._traces) == {SIZE, (50, 61)}
    assert runtime._traces[SIZE].structured_input_signature[0][0].shape.as_list() == [
        None,
        *SIZE,
        3,
    ]
    # A batch of another size reuses the trace of its image size.
    assert runtime(images[:1]).shape == (1, *SIZE, 5) and len(runtime._traces) == 2


def test_unoptimized_runtime_runs_the_model_as_built(ddrnet, images):
    runtime = KerasRuntime(ddrnet, 3, optimize=False)
    assert runtime.inference_model is ddrnet
    assert max_relative_difference(runtime(images), ddrnet(images, training=False)) < 1e-5


def test_xla_runtime_matches_keras(ddrnet, images):
    runtime = XlaRuntime(ddrnet, 3)
    assert runtime.name == "xla"
    expected = ddrnet(images, training=False).numpy()
    assert max_relative_difference(runtime(images), expected) < 1e-4


def test_bf16_runtime_is_close_to_fp32(ddrnet, images):
    runtime = KerasRuntime(ddrnet, 3, precision="bf16")
    assert runtime.inference_model.get_layer("stem_conv1").compute_dtype == "bfloat16"
    assert ddrnet.dtype_policy.name == "float32"
    assert keras.config.dtype_policy().name == "float32"
    expected = ddrnet(images, training=False).numpy()
    logits = runtime(images).numpy()
    assert logits.dtype == np.float32
    assert max_relative_difference(logits, expected) < 0.05
    assert np.mean(logits.argmax(-1) == expected.argmax(-1)) > 0.95


def test_precision_policy_is_restored_and_int8_is_not_a_keras_precision():
    with precision.precision_policy("bf16"):
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
        model = models.build_model("ddrnet23_slim", 3, input_shape=(64, 64, 3))
    assert keras.config.dtype_policy().name == "float32"
    assert model.get_layer("stem_conv1").compute_dtype == "bfloat16"
    assert model.get_layer("logits").compute_dtype == "float32"
    previous = precision.set_precision_policy("fp32")
    assert previous == "float32"
    with pytest.raises(InputError, match="int8 is a quantization of exported"):
        precision.set_precision_policy("int8")
    with pytest.raises(InputError, match="precision must be one of"):
        precision.keras_policy("fp8")


def test_cast_of_a_plain_functional_model_changes_every_layer(images):
    inputs = keras.Input((None, None, 3))
    outputs = keras.layers.Conv2D(4, 3, padding="same")(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, outputs)
    cast = precision.cast_model(model, "bf16")
    assert all(layer.compute_dtype == "bfloat16" for layer in cast.layers[1:])
    expected = model(images).numpy()
    assert max_relative_difference(cast(images).numpy().astype(np.float32), expected) < 0.02
    assert precision.cast_model(model, "fp32") is model


# bf16 is emulated (slow) on CPUs without BF16: with `pytest -m large`.
@pytest.mark.parametrize("quantize", [None, pytest.param("bf16", marks=pytest.mark.large)])
def test_saved_model_exports_folded_graphs_close_to_keras(ddrnet, images, tmp_path, quantize):
    path = export.export_model(ddrnet, tmp_path / "model", "saved_model", SIZE, quantize=quantize)
    runtime = load_runtime(path)
    assert isinstance(runtime, SavedModelRuntime) and runtime.fixed_size == SIZE
    expected = ddrnet(images, training=False).numpy()
    logits = np.asarray(runtime(images))
    tolerance = 1e-5 if quantize is None else 0.05
    assert max_relative_difference(logits, expected) < tolerance
    assert export.default_file_name("ddrnet23_slim", "saved_model", quantize) == (
        "ddrnet23_slim_bf16_saved_model" if quantize else "ddrnet23_slim_saved_model"
    )


def test_gather_resize_equals_the_resize_op_and_round_trips():
    from models.layers import ResizeToMatch

    features = np.random.default_rng(2).normal(size=(1, 5, 6, 3)).astype(np.float32)
    reference = np.zeros((1, 9, 11, 1), np.float32)  # ratios XLA's resize gets wrong
    expected = ResizeToMatch()(features, reference).numpy()
    layer = ResizeToMatch(method="gather", name="gather")
    np.testing.assert_allclose(layer(features, reference).numpy(), expected, atol=1e-5)
    compiled = tf.function(lambda x, y: layer(x, y), jit_compile=True)
    np.testing.assert_allclose(compiled(features, reference).numpy(), expected, atol=1e-5)
    assert ResizeToMatch.from_config(layer.get_config()).method == "gather"
    assert "method" not in ResizeToMatch().get_config()
    with pytest.raises(ValueError, match="`method` must be one of"):
        ResizeToMatch(method="bicubic")


# TFLite's and OpenVINO's runtimes run with `pytest -m large`; tests/semseg/export/test_export.py
# checks their exports against Keras in the default run.
@pytest.mark.parametrize(
    "format_name",
    [
        pytest.param("tflite", marks=pytest.mark.large),
        "onnx",
        pytest.param("openvino", marks=pytest.mark.large),
    ],
)
def test_exported_runtimes_return_float32_logits_of_every_image(
    ddrnet, images, tmp_path, format_name
):
    path = export.export_model(ddrnet, tmp_path / f"model.{format_name}", format_name, SIZE)
    runtime = load_runtime(path, threads=1)
    logits = runtime(images)
    assert isinstance(logits, np.ndarray) and logits.dtype == np.float32
    assert logits.shape == (2, *SIZE, 5)
    expected = ddrnet(images, training=False).numpy()
    assert max_relative_difference(logits, expected) < 1e-5
    # Each image of the batch is its own (a reused output buffer would repeat the last).
    assert max_relative_difference(runtime(images[:1])[0], expected[0]) < 1e-5
