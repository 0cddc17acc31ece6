"""Tests of the model zoo (`models/`): the shared contract of every registered
model (shape, NaN, `.keras` round trip, two training steps), DDRNet's exact
parameter counts, the `keras.applications` encoders (pyramid levels, dilation,
ImageNet weights copied into N-channel twins, the offline error), options and
argument checking.

The contract test of the biggest encoders (EfficientNet-B1..B7, ResNet-101) and of
the larger siblings of a model that stays (`LARGE_MODELS`) is marked `large`: run
it with `pytest -m large tests/models/test_models.py`.
"""

import dataclasses
import functools
import hashlib
import urllib.error

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.legacy.saving import legacy_h5_format
from keras.src.utils import file_utils

from models import MODELS, DDRNet, ResizeToMatch, build_model
from models.encoders import ENCODERS, adapt_input_kernel, build_encoder, input_statistics

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


def learnable_batch(num_classes=NUM_CLASSES, channels=3, size=(128, 128), seed=0):
    """A fixed batch of 2 images whose 16x16 blocks have a class, each class its colour.

    128x128, not smaller: at 64x96 the 1/64 branch of DDRNet is 1x2 pixels and
    BatchNorm over so few values makes single steps erratic.
    """
    generator = np.random.default_rng(seed)
    height, width = size
    blocks = generator.integers(0, num_classes, (2, height // 16, width // 16))
    labels = np.repeat(np.repeat(blocks, 16, axis=1), 16, axis=2).astype("int32")
    palette = generator.uniform(0, 255, (num_classes, channels))
    noise = generator.normal(0, 20, (2, height, width, channels))
    return (palette[labels] + noise).clip(0, 255).astype("float32"), labels


def training_losses(model, images, labels, steps=2):
    """Losses of `steps + 1` training steps on one batch (the last one after `steps` updates).

    Dropout is switched off so that the loss is a deterministic function of the
    weights; the steps run eagerly (a graph trace of the big models takes minutes).
    """
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    model.compile(
        optimizer=keras.optimizers.Adam(1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,
    )
    return [float(model.train_on_batch(images, labels)) for _ in range(steps + 1)]


# EfficientNet-B1..B7 and ResNet-101 take 20 s to minutes each on 2 CPU cores: they
# run with `pytest -m large`. B1..B7 share every line of code with B0 (only depth and
# width differ). The default run keeps every head (DeepLabV3+ on MobileNetV3, FPN on
# EfficientNet-B0, OCRNet on ResNet-50, DDRNet, PIDNet) and encoder; the EfficientNet
# DeepLabV3+ builders also meet there in the aux-head and pretrained-weights tests.
LARGE_MODELS = (
    "effdeeplabv3plus_b1",
    "effdeeplabv3plus_b2",
    "effdeeplabv3plus_b3",
    "effdeeplabv3plus_b4",
    "effdeeplabv3plus_b5",
    "effdeeplabv3plus_b6",
    "effdeeplabv3plus_b7",
    "deeplabv3plus_resnet101",
    "fpn_resnet101",
    # Siblings of a model that stays: ResNet-50 FPN (FPN on EfficientNet-B0 stays), the
    # large MobileNetV3 (small stays), DDRNet-23 (slim stays), PIDNet-M and -L (S stays),
    # the light EfficientNet DeepLabV3+, EfficientNet-B0 DeepLabV3+ and ResNet-50
    # DeepLabV3+ (the DeepLabV3+ head stays with MobileNetV3, the EfficientNet-B0 encoder
    # with FPN, the ResNet-50 encoder with OCRNet).
    "fpn_resnet50",
    "deeplabv3plus_resnet50",
    "effdeeplabv3plus_lite",
    "effdeeplabv3plus_b0",
    "mnv3deeplabv3plus_large",
    "ddrnet23",
    "pidnet_m",
    "pidnet_l",
)


def model_params(names):
    return [
        pytest.param(name, marks=pytest.mark.large) if name in LARGE_MODELS else name
        for name in names
    ]


@pytest.mark.parametrize("name", model_params(sorted(MODELS)))
def test_registered_model_contract(name, tmp_path):
    keras.utils.set_random_seed(0)
    model = build_model(name, NUM_CLASSES)
    images = random_images()

    logits = model(images, training=False).numpy()

    assert model.name == name
    assert logits.shape == (2, HEIGHT, WIDTH, NUM_CLASSES)
    assert logits.dtype == np.float32
    assert np.isfinite(logits).all()
    assert model.get_layer("logits").output.shape[-1] == NUM_CLASSES

    # `.keras` round trip: the model is rebuilt from its config and gets its weights back.
    config = model.get_config()
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model)
    assert loaded.get_config() == config
    assert count_trainable_parameters(loaded) == count_trainable_parameters(model)
    np.testing.assert_allclose(loaded(images, training=False), logits, rtol=1e-5, atol=1e-5)

    # Two training steps lower the loss on a fixed batch.
    losses = training_losses(loaded, *learnable_batch())
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0], losses


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


def test_ddrnet_lite_is_slim_narrowed_to_24_channels_with_fewer_blocks():
    model = cached_model("ddrnet_lite")
    names = {layer.name for layer in model.layers}
    blocks = {
        stage: sorted(
            name for name in names if name.startswith(f"{stage}_block") and name.endswith("_conv1")
        )
        for stage in ("layer1", "layer2", "layer3", "layer3_high", "layer4", "layer4_high")
    }
    assert {stage: len(convs) for stage, convs in blocks.items()} == {
        "layer1": 1, "layer2": 2, "layer3": 1, "layer3_high": 1, "layer4": 1, "layer4_high": 1,
    }  # fmt: skip
    assert model.get_layer("stem_conv1").filters == 24
    assert model.get_layer("layer3_high_block1_conv1").filters == 48  # the 1/8 branch
    assert model.get_layer("layer4_block1_conv1").filters == 192  # 1/32
    assert model.stage_blocks == (1, 2, 1, 1)
    assert count_trainable_parameters(model) == 2_633_323
    # The same class with the official widths and blocks is DDRNet-23-slim.
    slim = DDRNet(NUM_CLASSES, planes=32, stage_blocks=(2, 2, 2, 2))
    assert (
        count_trainable_parameters(slim) == OFFICIAL_TRAINABLE_PARAMETERS[("ddrnet23_slim", False)]
    )


@pytest.mark.parametrize(
    "stage_blocks", [(2, 2, 2), (1, 0, 1, 1), (1, 2, 1, True), "2222", (1.0, 2, 1, 1)]
)
def test_ddrnet_rejects_bad_stage_blocks(stage_blocks):
    with pytest.raises(ValueError, match="stage_blocks"):
        DDRNet(NUM_CLASSES, stage_blocks=stage_blocks)


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


# --- Encoders from keras.applications. ---

ENCODER_CHANNELS = {
    "efficientnetb0": (24, 40, 112, 1280),
    "mobilenetv3large": (24, 40, 112, 960),
    "mobilenetv3small": (16, 24, 48, 576),
    "resnet50": (256, 512, 1024, 2048),
}


@pytest.mark.parametrize(
    ("name", "output_stride"),
    [(name, 16) for name in sorted(ENCODER_CHANNELS)]
    + [("mobilenetv3small", 8), ("mobilenetv3small", 32)],
)
def test_encoder_returns_the_pyramid_at_the_output_stride(name, output_stride):
    encoder = build_encoder(name, (None, None, 2), output_stride=output_stride)
    features = encoder(random_images(128, 192, channels=2, batch_size=1))

    assert sorted(features) == ["P2", "P3", "P4", "P5"]
    for level, channels in zip(("P2", "P3", "P4", "P5"), ENCODER_CHANNELS[name]):
        stride = min(2 ** int(level[1]), output_stride)
        assert features[level].shape == (1, 128 // stride, 192 // stride, channels), level
    assert not [layer for layer in encoder.layers if isinstance(layer, keras.layers.Rescaling)]


def test_dilated_encoder_equals_the_strided_one_on_its_grid():
    """The atrous conversion keeps the function: at output stride 8 (stage 4 dilated
    by 2, stage 5 by 4), ResNet-50's P4 and P5 sampled every 2 and 4 pixels equal the
    plain stride-16 P4 and stride-32 P5."""
    strided = build_encoder("resnet50", output_stride=32)
    dilated = build_encoder("resnet50", output_stride=8)
    dilated.set_weights(strided.get_weights())
    images = np.random.default_rng(0).normal(size=(1, 128, 160, 3)).astype("float32")

    expected = strided(images, training=False)
    features = dilated(images, training=False)

    for level, step, shape in (("P4", 2, (1, 8, 10, 1024)), ("P5", 4, (1, 4, 5, 2048))):
        sampled = features[level].numpy()[:, ::step, ::step]
        reference = expected[level].numpy()
        assert reference.shape == shape and sampled.shape == shape
        np.testing.assert_allclose(sampled, reference, atol=1e-5 * np.abs(reference).max())


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 6])
def test_adapted_first_kernel_keeps_the_pretrained_responses(channels):
    generator = np.random.default_rng(0)
    kernel = generator.normal(size=(3, 3, 3, 8)).astype("float32")

    adapted = adapt_input_kernel(kernel, channels)

    assert adapted.shape == (3, 3, channels, 8) and adapted.dtype == np.float32
    if channels >= 3:
        np.testing.assert_array_equal(adapted[:, :, :3], kernel)  # RGB filters kept
        for extra in range(3, channels):
            np.testing.assert_allclose(adapted[:, :, extra], kernel.mean(axis=2), rtol=1e-6)
    else:
        # A grey image (the same value in every channel) gets the RGB response.
        np.testing.assert_allclose(adapted.sum(axis=2), kernel.sum(axis=2), rtol=1e-5)
        for channel in range(channels):
            np.testing.assert_allclose(adapted[:, :, channel], adapted[:, :, 0])


def write_fake_imagenet_weights(name, cache_dir, monkeypatch):
    """Saves random weights of the 3-channel application where Keras caches the ImageNet
    file, and points the spec's hash at it: the 'imagenet' path runs without network."""
    spec = ENCODERS[name]
    application = getattr(keras.applications, spec.application)
    source = application(
        include_top=False, weights=None, input_shape=(None, None, 3), **dict(spec.options)
    )
    path = cache_dir / "models" / spec.weights_file
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as weights_file:
        legacy_h5_format.save_weights_to_hdf5_group(weights_file, source)
    file_hash = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setitem(ENCODERS, name, dataclasses.replace(spec, weights_hash=file_hash))
    return source, path


@pytest.fixture
def offline_keras_cache(tmp_path, monkeypatch):
    """An empty Keras cache and a download function that fails (and records its URLs)."""
    attempts = []

    def no_network(url, *args, **kwargs):
        attempts.append(url)
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(file_utils, "urlretrieve", no_network)
    return tmp_path / "keras", attempts


@pytest.mark.parametrize(("name", "channels"), [("mobilenetv3small", 4), ("resnet50", 1)])
def test_imagenet_weights_are_copied_into_the_c_channel_encoder(
    name, channels, offline_keras_cache, monkeypatch
):
    cache_dir, attempts = offline_keras_cache
    source, _ = write_fake_imagenet_weights(name, cache_dir, monkeypatch)

    encoder = build_encoder(name, (None, None, channels), weights="imagenet")

    assert attempts == []
    first_convolution = next(
        layer for layer in source.layers if isinstance(layer, keras.layers.Conv2D)
    )
    for layer in source.layers:
        if not layer.weights or isinstance(layer, keras.layers.Normalization):
            continue
        copied = encoder.get_layer(layer.name).get_weights()
        expected = layer.get_weights()
        if layer is first_convolution:
            rgb = expected[0][:, :, ::-1] if ENCODERS[name].bgr else expected[0]
            expected = [adapt_input_kernel(rgb, channels), *expected[1:]]
        for value, reference in zip(copied, expected, strict=True):
            np.testing.assert_array_equal(value, reference, err_msg=layer.name)


def test_models_with_imagenet_weights_round_trip_without_the_weights_file(
    offline_keras_cache, monkeypatch, tmp_path
):
    cache_dir, attempts = offline_keras_cache
    source, weights_path = write_fake_imagenet_weights("mobilenetv3small", cache_dir, monkeypatch)
    model = build_model(
        "mnv3deeplabv3plus_small", 3, input_shape=(None, None, 4), weights="imagenet"
    )
    encoder_kernel = model.get_layer("encoder").get_layer("conv").get_weights()[0]
    np.testing.assert_array_equal(encoder_kernel[:, :, :3], source.get_layer("conv").kernel)
    assert model.get_config()["encoder_weights"] == "imagenet"

    weights_path.unlink()  # Loading a saved model never needs the ImageNet file.
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")

    assert attempts == []
    images = random_images(channels=4)
    np.testing.assert_allclose(loaded(images), model(images), rtol=1e-5, atol=1e-5)


def test_imagenet_download_failure_explains_how_to_work_offline(offline_keras_cache):
    cache_dir, attempts = offline_keras_cache
    spec = ENCODERS["efficientnetb0"]

    with pytest.raises(ValueError) as error:
        build_model("effdeeplabv3plus_b0", NUM_CLASSES, weights="imagenet")

    message = str(error.value)
    assert attempts == [spec.weights_url]
    assert (
        spec.weights_url
        == "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5"
    )
    assert "ImageNet weights of encoder 'efficientnetb0' could not be downloaded" in message
    assert spec.weights_url in message
    assert str(cache_dir / "models" / "efficientnetb0_notop.h5") in message
    assert "weights=None" in message


# --- Options shared by the models on keras.applications encoders. ---

FAMILY_REPRESENTATIVES = ("effdeeplabv3plus_lite", "fpn_effb0", "ocrnet_resnet50")


@pytest.mark.parametrize("name", FAMILY_REPRESENTATIVES)
def test_aux_head_returns_logits_then_aux_logits(name):
    model = build_model(name, NUM_CLASSES, aux_head=True)

    outputs = model(random_images(), training=False)

    assert model.output_names == ["logits", "aux_logits"]
    for output in outputs:
        assert output.shape == (2, HEIGHT, WIDTH, NUM_CLASSES)
        assert np.isfinite(output.numpy()).all()


@pytest.mark.parametrize(
    ("name", "size"),
    [(name, (97, 131)) for name in FAMILY_REPRESENTATIVES] + [("effdeeplabv3plus_lite", (33, 17))],
)
def test_any_input_size_gives_logits_at_that_size(name, size):
    model = cached_model(name)
    logits = model(random_images(*size, batch_size=1), training=False)
    assert logits.shape == (1, *size, NUM_CLASSES)


def test_output_stride_option_sets_dilation_and_aspp_rates():
    model = build_model("mnv3deeplabv3plus_small", NUM_CLASSES, output_stride=8)
    features = model.get_layer("encoder").output

    assert model.output_stride == 8 and model.aspp_rates == [12, 24, 36]
    assert cached_model("mnv3deeplabv3plus_small").aspp_rates == [6, 12, 18]
    logits = model(random_images(), training=False)
    assert logits.shape == (2, HEIGHT, WIDTH, NUM_CLASSES)
    assert features["P5"].shape[-1] == 576
    with pytest.raises(ValueError, match="Received: output_stride=4"):
        build_model("mnv3deeplabv3plus_small", NUM_CLASSES, output_stride=4)
    with pytest.raises(ValueError, match="Received: encoder_weights='imagenet21k'"):
        build_model("mnv3deeplabv3plus_small", NUM_CLASSES, weights="imagenet21k")


def test_models_normalise_with_the_statistics_their_weights_expect():
    expected = {
        "efficientnetb0": ([123.675, 116.28, 103.53], [58.395, 57.12, 57.375]),
        "mobilenetv3large": ([127.5] * 3, [127.5] * 3),
        "resnet101": ([123.68, 116.779, 103.939], [1.0] * 3),
    }
    for name, (mean, std) in expected.items():
        assert input_statistics(name, 3) == (mean, std), name
    mean, std = input_statistics("efficientnetb0", 4)
    assert mean[:3] == expected["efficientnetb0"][0] and std[:3] == expected["efficientnetb0"][1]
    assert (mean[3], std[3]) == pytest.approx((np.mean(mean[:3]), np.mean(std[:3])))
    assert input_statistics("resnet50", 1) == (pytest.approx([114.79933]), [1.0])
    assert input_statistics("resnet50", 2, mean=10, std=[2, 4]) == ([10.0, 10.0], [2.0, 4.0])
    with pytest.raises(ValueError, match="Received: std="):
        input_statistics("resnet50", 3, std=0.0)

    model = cached_model("ocrnet_resnet50")
    assert (model.mean, model.std) == expected["resnet101"]
    normalize = keras.Model(model.input, model.get_layer("normalize").output)
    normalised = normalize(np.full((1, 2, 2, 3), 123.68, "float32"))[0, 0, 0]
    np.testing.assert_allclose(normalised, [0.0, 123.68 - 116.779, 123.68 - 103.939], rtol=1e-5)


@pytest.mark.parametrize(
    ("name", "channels"),
    [
        ("mnv3deeplabv3plus_small", 4),
        pytest.param("effdeeplabv3plus_lite", 1, marks=pytest.mark.large),
    ],
)
def test_models_with_other_channel_counts_train(name, channels):
    keras.utils.set_random_seed(0)
    model = build_model(name, 5, input_shape=(None, None, channels))

    losses = training_losses(model, *learnable_batch(5, channels=channels))

    assert model.input_shape == (None, None, None, channels)
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("name", ["ddrnet23_slim", "effdeeplabv3plus_lite"])
def test_binary_models_have_one_logit_channel(name):
    model = build_model(name, 1)
    assert model(random_images(batch_size=1), training=False).shape == (1, HEIGHT, WIDTH, 1)
