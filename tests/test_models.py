"""Tests of the model zoo (`models/`): the shared contract of every registered
model, DDRNet's exact parameter counts, and argument checking.

Run with `pytest tests/test_models.py`; it takes well under two minutes on 2 CPU cores.
"""

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from models import MODELS, DDRNet, ResizeToMatch, build_model

NUM_CLASSES = 19
HEIGHT, WIDTH = 64, 96

# Trainable parameters of the official PyTorch models (ydhongHIT/DDRNet) with 19 classes.
OFFICIAL_TRAINABLE_PARAMETERS = {
    ("ddrnet23_slim", False): 5_695_987,
    ("ddrnet23_slim", True): 5_734_342,
    ("ddrnet23", False): 20_148_947,
}


@functools.cache
def cached_model(name, aux_head=False):
    """Each configuration is built once per test session (building takes seconds)."""
    options = {"aux_head": True} if aux_head else {}
    return build_model(name, NUM_CLASSES, **options)


def random_images(height=HEIGHT, width=WIDTH, channels=3, batch_size=2, seed=0):
    generator = np.random.default_rng(seed)
    return generator.uniform(0, 255, (batch_size, height, width, channels)).astype("float32")


def count_trainable_parameters(model):
    return int(sum(np.prod(weight.shape) for weight in model.trainable_weights))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registered_model_contract(name, tmp_path):
    model = cached_model(name)
    images = random_images()

    logits = model.predict_on_batch(images)

    assert logits.shape == (2, HEIGHT, WIDTH, NUM_CLASSES)
    assert logits.dtype == np.float32
    assert np.isfinite(logits).all()
    assert model.get_layer("logits").output.shape[-1] == NUM_CLASSES

    config = model.get_config()
    rebuilt = model.__class__.from_config(config)
    assert rebuilt.get_config() == config
    assert count_trainable_parameters(rebuilt) == count_trainable_parameters(model)

    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.get_config() == config
    np.testing.assert_allclose(loaded.predict_on_batch(images), logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registered_model_rejects_bad_arguments(name):
    with pytest.raises(ValueError, match="num_classes"):
        build_model(name, num_classes=0)
    with pytest.raises(ValueError, match="input_shape"):
        build_model(name, NUM_CLASSES, input_shape=(None, None, 0))
    with pytest.raises(ValueError, match="not_an_option"):
        build_model(name, NUM_CLASSES, not_an_option=1)


@pytest.mark.parametrize(
    ("name", "aux_head"), sorted(OFFICIAL_TRAINABLE_PARAMETERS), ids=lambda value: str(value)
)
def test_ddrnet_trainable_parameters_match_official_model(name, aux_head):
    model = cached_model(name, aux_head)
    expected = OFFICIAL_TRAINABLE_PARAMETERS[(name, aux_head)]
    assert count_trainable_parameters(model) == expected


def test_ddrnet_parameter_count_does_not_depend_on_static_input_size():
    model = build_model("ddrnet23_slim", NUM_CLASSES, input_shape=(HEIGHT, WIDTH, 3))
    expected = OFFICIAL_TRAINABLE_PARAMETERS[("ddrnet23_slim", False)]
    assert count_trainable_parameters(model) == expected
    assert model.output_shape == (None, HEIGHT, WIDTH, NUM_CLASSES)


def test_ddrnet_aux_head_returns_logits_then_aux_logits():
    model = cached_model("ddrnet23_slim", aux_head=True)

    outputs = model.predict_on_batch(random_images())

    assert model.output_names == ["logits", "aux_logits"]
    assert len(outputs) == 2
    for output in outputs:
        assert output.shape == (2, HEIGHT, WIDTH, NUM_CLASSES)
        assert output.dtype == np.float32
        assert np.isfinite(output).all()


@pytest.mark.parametrize("size", [(97, 131), (100, 130), (33, 17)])
def test_ddrnet_output_has_exactly_the_input_size(size):
    model = cached_model("ddrnet23_slim")
    logits = model.predict_on_batch(random_images(*size, batch_size=1))
    assert logits.shape == (1, *size, NUM_CLASSES)
    assert np.isfinite(logits).all()


def test_ddrnet_static_input_shape_matches_dynamic_model():
    dynamic = cached_model("ddrnet23_slim")
    static = build_model("ddrnet23_slim", NUM_CLASSES, input_shape=(97, 131, 3))
    static.set_weights(dynamic.get_weights())
    images = random_images(97, 131, batch_size=1)

    # An input signature with `None` sizes forces the dynamic-size resize path.
    dynamic_function = tf.function(
        lambda x: dynamic(x, training=False),
        input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)],
    )
    expected = static(images, training=False).numpy()
    logits = dynamic_function(images).numpy()

    assert static.output_shape == (None, 97, 131, NUM_CLASSES)
    np.testing.assert_allclose(logits, expected, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize(
    ("channels", "expected_mean"), [(1, [127.5]), (3, [123.675, 116.28, 103.53]), (4, [127.5] * 4)]
)
def test_ddrnet_accepts_any_channel_count(channels, expected_mean):
    model = ddrnet_with_channels(channels)

    logits = model.predict_on_batch(random_images(channels=channels))

    assert logits.shape == (2, HEIGHT, WIDTH, NUM_CLASSES)
    assert np.isfinite(logits).all()
    assert model.mean == expected_mean
    normalize = model.get_layer("normalize")
    assert normalize.trainable_weights == []
    assert normalize.non_trainable_weights == []
    # Only the stem's first convolution depends on the channel count.
    official = OFFICIAL_TRAINABLE_PARAMETERS[("ddrnet23_slim", False)]
    assert count_trainable_parameters(model) == official + 3 * 3 * 32 * (channels - 3)


def ddrnet_with_channels(channels):
    if channels == 3:
        return cached_model("ddrnet23_slim")
    return build_model("ddrnet23_slim", NUM_CLASSES, input_shape=(None, None, channels))


def test_ddrnet_normalises_with_the_given_mean_and_std():
    model = build_model("ddrnet23_slim", 2, input_shape=(None, None, 2), mean=10.0, std=[2.0, 4.0])
    normalize = keras.Model(model.input, model.get_layer("normalize").output)

    normalised = normalize.predict_on_batch(np.full((1, 4, 4, 2), 18.0, "float32"))

    assert model.get_config()["mean"] == [10.0, 10.0]
    assert model.get_config()["std"] == [2.0, 4.0]
    np.testing.assert_allclose(normalised[0, 0, 0], [4.0, 2.0], rtol=1e-6)


def test_ddrnet_builders_set_model_name_and_widths():
    model = cached_model("ddrnet23")
    assert model.name == "ddrnet23"
    assert isinstance(model, DDRNet)
    assert (model.planes, model.spp_planes, model.head_planes) == (64, 128, 128)
    assert MODELS["ddrnet23_slim"](3, name="my_model").name == "my_model"


def test_build_model_rejects_unknown_name_and_lists_valid_names():
    with pytest.raises(ValueError, match="Received: name='ddrnet99'") as error:
        build_model("ddrnet99", NUM_CLASSES)
    for name in MODELS:
        assert name in str(error.value)


@pytest.mark.parametrize("num_classes", [0, -3, 2.5, True, "19", None])
def test_build_model_rejects_bad_num_classes(num_classes):
    with pytest.raises(ValueError, match="Received: num_classes="):
        build_model("ddrnet23_slim", num_classes)


@pytest.mark.parametrize(
    "input_shape",
    [(None, None), (None, None, 3, 1), (None, None, None), (0, 64, 3), (64, -1, 3), (64.5, 64, 3)],
)
def test_build_model_rejects_bad_input_shape(input_shape):
    with pytest.raises(ValueError, match="Received: input_shape="):
        build_model("ddrnet23_slim", NUM_CLASSES, input_shape=input_shape)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"colour": "red"}, "Unknown option.*'colour'.*valid options are.*'mean'"),
        ({"aux_head": "yes"}, "Received: aux_head='yes'"),
        ({"mean": [1.0, 2.0]}, "sequence of 3 numbers.*Received: mean="),
        ({"std": 0.0}, "Received: std="),
        ({"std": "64"}, "Received: std="),
    ],
)
def test_ddrnet_rejects_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        build_model("ddrnet23_slim", NUM_CLASSES, **options)


def test_resize_to_match_dynamic_path_equals_keras_resize():
    generator = np.random.default_rng(0)
    features = generator.normal(size=(2, 7, 9, 5)).astype("float32")
    reference = np.zeros((2, 61, 50, 1), "float32")  # Upsampling in height, both ways in width.
    layer = ResizeToMatch()

    expected = keras.ops.image.resize(features, (61, 50), interpolation="bilinear")
    dynamic_call = tf.function(
        layer.call,
        input_signature=[
            tf.TensorSpec((None, None, None, 5), tf.float32),
            tf.TensorSpec((None, None, None, 1), tf.float32),
        ],
    )
    resized = dynamic_call(features, reference)

    np.testing.assert_allclose(resized, expected, atol=1e-5)
    np.testing.assert_allclose(layer(features, reference), expected, atol=1e-6)
    assert ResizeToMatch.from_config(layer.get_config()).get_config() == layer.get_config()
