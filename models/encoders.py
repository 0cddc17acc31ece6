"""Pyramid encoders from `keras.applications`: EfficientNet-B0..B7, MobileNetV3, ResNet.

The encoders, their feature taps and weight files are one table here; the config
surgery of changes 1 and 2 below is `models.rebuild`.

`build_encoder(name, input_shape, weights, output_stride)` returns a functional
`keras.Model` whose output is the dict `{"P2": ..., "P3": ..., "P4": ..., "P5": ...}`
of feature maps, where `Pn` is `2**n` times smaller than the input (capped at the
output stride). The networks are the `keras.applications` ones
(`include_top=False`), rebuilt from their config with three changes:

1. **No built-in preprocessing.** The Rescaling/Normalization layers of
   EfficientNet are removed (MobileNetV3 is built with
   `include_preprocessing=False`, ResNet has none): the segmentation models
   normalise their 0..255 input themselves with the statistics of
   `input_statistics`, for any number of channels. Those statistics are what
   the ImageNet weights expect: torchvision mean/std for EfficientNet, 127.5/127.5
   for MobileNetV3 and Caffe means without scaling for ResNet (whose first
   convolution is flipped from BGR to RGB order when weights are loaded, so the
   model takes RGB like every other model of the zoo).
2. **Output stride by dilation** (the "atrous" algorithm of DeepLab, Chen et al.
   2017, https://arxiv.org/abs/1706.05587): every stride-2 convolution whose
   output would be finer than `output_stride` gets stride 1, and every later layer
   with a spatial kernel gets the dilation rate `nominal input stride /
   output_stride`, so it sees the same pixels as in the original network. The
   strided layer itself keeps its current rate (as timm and torchvision do). The
   explicit `ZeroPadding2D` before a formerly strided "valid" convolution becomes
   the symmetric `rate * (kernel - 1) / 2` padding of a stride-1 convolution. The
   weights are unchanged, so ImageNet weights apply as they are.
3. **Any number of input channels.** The rebuilt network takes `C >= 1` channels.
   With ImageNet weights, the 3-channel network is built with its weights and
   they are copied layer by layer into the C-channel twin; only the first
   convolution differs, and `adapt_input_kernel` derives its filters from the
   RGB ones.

Pyramid levels: `P2..P4` are the outputs of the last block of the stages at
strides 4, 8 and 16; `P5` is the output of the `include_top=False` network (for
EfficientNet and MobileNetV3 after their final 1x1 convolution).

Example:
    >>> encoder = build_encoder("resnet50", (None, None, 4), output_stride=16)
    >>> {key: value.shape[-1] for key, value in encoder.output.items()}
    {'P2': 256, 'P3': 512, 'P4': 1024, 'P5': 2048}
"""

import dataclasses
import logging
import os
import re
from pathlib import Path

import keras
import numpy as np

from models.arguments import (
    channel_statistics,
    check_choice,
    check_input_shape,
    check_positive_int,
)
from models.rebuild import PREPROCESSING_LAYERS, rebuild_config

logger = logging.getLogger(__name__)

OUTPUT_STRIDES = (8, 16, 32)
WEIGHTS = (None, "imagenet")

# Input statistics (RGB order, pixel values 0..255) the ImageNet weights expect.
EFFICIENTNET_STATISTICS = ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
MOBILENETV3_STATISTICS = ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5))
RESNET_STATISTICS = ((123.68, 116.779, 103.939), (1.0, 1.0, 1.0))

KERAS_APPLICATIONS_URL = "https://storage.googleapis.com/keras-applications/"
TENSORFLOW_APPLICATIONS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    """How to build one encoder from `keras.applications`.

    Attributes:
        application: name of the `keras.applications` function, e.g. `"ResNet50"`.
        statistics: `(mean, std)` RGB input statistics its ImageNet weights expect.
        taps: regular expressions for P2, P3 and P4; each level is the output of
            the last layer (in topological order) whose name matches.
        weights_url: URL of the `include_top=False` ImageNet weights file.
        weights_hash: its MD5 hash, as `keras.applications` checks it.
        bgr: whether the ImageNet weights expect BGR input (Caffe-style ResNet).
        options: extra keyword arguments for the application function.
    """

    application: str
    statistics: tuple
    taps: tuple
    weights_url: str
    weights_hash: str
    bgr: bool = False
    options: tuple = ()

    @property
    def weights_file(self):
        return self.weights_url.rsplit("/", 1)[-1]


def _efficientnet(variant, weights_hash):
    return EncoderSpec(
        application=f"EfficientNet{variant.upper()}",
        statistics=EFFICIENTNET_STATISTICS,
        taps=(r"^block2[a-z]_", r"^block3[a-z]_", r"^block5[a-z]_"),
        weights_url=f"{KERAS_APPLICATIONS_URL}efficientnet{variant}_notop.h5",
        weights_hash=weights_hash,
    )


def _mobilenetv3(size, taps, weights_hash):
    return EncoderSpec(
        application=f"MobileNetV3{size.capitalize()}",
        statistics=MOBILENETV3_STATISTICS,
        taps=taps,
        weights_url=(
            f"{TENSORFLOW_APPLICATIONS_URL}mobilenet_v3/"
            f"weights_mobilenet_v3_{size}_224_1.0_float_no_top_v2.h5"
        ),
        weights_hash=weights_hash,
        options=(("include_preprocessing", False),),
    )


def _resnet(depth, weights_hash):
    return EncoderSpec(
        application=f"ResNet{depth}",
        statistics=RESNET_STATISTICS,
        taps=(r"^conv2_", r"^conv3_", r"^conv4_"),
        weights_url=(
            f"{TENSORFLOW_APPLICATIONS_URL}resnet/"
            f"resnet{depth}_weights_tf_dim_ordering_tf_kernels_notop.h5"
        ),
        weights_hash=weights_hash,
        bgr=True,
    )


# Weights files and MD5 hashes are those of `keras.applications` (Keras 3.15).
ENCODERS = {
    "efficientnetb0": _efficientnet("b0", "50bc09e76180e00e4465e1a485ddc09d"),
    "efficientnetb1": _efficientnet("b1", "74c4e6b3e1f6a1eea24c589628592432"),
    "efficientnetb2": _efficientnet("b2", "111f8e2ac8aa800a7a99e3239f7bfb39"),
    "efficientnetb3": _efficientnet("b3", "af6d107764bb5b1abb91932881670226"),
    "efficientnetb4": _efficientnet("b4", "ebc24e6d6c33eaebbd558eafbeedf1ba"),
    "efficientnetb5": _efficientnet("b5", "38879255a25d3c92d5e44e04ae6cec6f"),
    "efficientnetb6": _efficientnet("b6", "9ecce42647a20130c1f39a5d4cb75743"),
    "efficientnetb7": _efficientnet("b7", "cbcfe4450ddf6f3ad90b1b398090fe4a"),
    "mobilenetv3large": _mobilenetv3(
        "large",
        (r"^expanded_conv_2_", r"^expanded_conv_5_", r"^expanded_conv_11_"),
        "07fb09a5933dd0c8eaafa16978110389",
    ),
    "mobilenetv3small": _mobilenetv3(
        "small",
        (r"^expanded_conv_[a-z]", r"^expanded_conv_2_", r"^expanded_conv_7_"),
        "d3e8ec802a04aa4fc771ee12a9a9b836",
    ),
    "resnet50": _resnet(50, "4d473c1dd8becc155b73f8504c6f6626"),
    "resnet101": _resnet(101, "88cf7a10940856eca736dc7b7e228a21"),
}


def check_weights(argument, weights):
    """Raises `ValueError` unless `weights` is `None`, `"imagenet"` or the path of a `.h5` file.

    A `.h5` file is the `keras.applications` `include_top=False` weights file of the
    encoder (the one `download_weights` fetches), for machines without internet access.
    """
    if weights in WEIGHTS:
        return
    if isinstance(weights, str) and weights.endswith(".h5"):
        if not os.path.isfile(weights):
            raise ValueError(f"`{argument}` file not found. Received: {argument}={weights!r}")
        return
    raise ValueError(
        f"`{argument}` must be None, 'imagenet' or the path of a keras.applications .h5 "
        f"weights file. Received: {argument}={weights!r}"
    )


def check_encoder_model(input_shape, num_classes, encoder, encoder_weights, output_stride):
    """The checks every model on an encoder makes; returns `input_shape` as a tuple.

    Raises:
        ValueError: naming the argument and the value received.
    """
    input_shape = check_input_shape(input_shape)
    check_positive_int("num_classes", num_classes)
    check_encoder(encoder)
    check_weights("encoder_weights", encoder_weights)
    check_choice("output_stride", output_stride, OUTPUT_STRIDES)
    return input_shape


def check_encoder(name):
    """Raises `ValueError` unless `name` is a key of `ENCODERS`."""
    if name not in ENCODERS:
        raise ValueError(
            f"Unknown encoder. Expected one of {sorted(ENCODERS)}. Received: encoder={name!r}"
        )


def input_statistics(name, channels, mean=None, std=None):
    """The per-channel mean and std a model normalises its 0..255 input with.

    Defaults are the statistics the encoder's ImageNet weights expect (RGB order).
    For more than 3 channels the first three are taken as RGB and every extra
    channel gets the average of the RGB statistics; for 1 or 2 channels every
    channel gets that average.

    Args:
        name: encoder name, a key of `ENCODERS`.
        channels: int >= 1, number of input channels.
        mean: `None` (the default above), a number or one number per channel.
        std: `None`, a positive number or one positive number per channel.

    Returns:
        `(mean, std)`, two lists of `channels` floats.
    """
    check_encoder(name)
    rgb_mean, rgb_std = ENCODERS[name].statistics
    defaults = []
    for rgb in (rgb_mean, rgb_std):
        average = float(np.mean(rgb))
        extra = [average] * max(channels - 3, 0)
        defaults.append(list(rgb) + extra if channels >= 3 else [average] * channels)
    mean = channel_statistics("mean", mean, channels, defaults[0])
    std = channel_statistics("std", std, channels, defaults[1])
    if min(std) <= 0:
        raise ValueError(f"`std` must be positive for every channel. Received: std={std}")
    return mean, std


def adapt_input_kernel(kernel, channels):
    """Filters of a first convolution for `channels` inputs from its RGB filters.

    * `channels >= 3`: the RGB filters are kept for the first three channels and
      every extra channel (thermal, NIR, depth...) gets the mean of the RGB
      filters, so the RGB part responds exactly as the pretrained network.
    * `channels < 3`: every channel gets the mean RGB filter times `3 / channels`
      (for one channel: the sum of the RGB filters), so a grey image - the same
      value in every channel - gives the response the pretrained network gives to
      that grey image in RGB.

    Args:
        kernel: float array `(kh, kw, 3, filters)`, the RGB kernel.
        channels: int >= 1.

    Returns:
        float array `(kh, kw, channels, filters)` of the kernel's dtype.
    """
    kernel = np.asarray(kernel)
    if kernel.ndim != 4 or kernel.shape[2] != 3:
        raise ValueError(
            f"Expected an RGB kernel (kh, kw, 3, filters). Received: shape {kernel.shape}"
        )
    mean_filter = kernel.mean(axis=2, keepdims=True)
    if channels >= 3:
        extra = np.repeat(mean_filter, channels - 3, axis=2)
        return np.concatenate([kernel, extra], axis=2).astype(kernel.dtype)
    return np.repeat(mean_filter * (3.0 / channels), channels, axis=2).astype(kernel.dtype)


def keras_cache_dir():
    """The folder `keras.utils.get_file` caches downloads in: `$KERAS_HOME` or `~/.keras`."""
    return Path(os.environ.get("KERAS_HOME") or Path("~/.keras").expanduser())


def download_weights(name):
    """Path of the ImageNet weights file of an encoder, downloaded through Keras if needed.

    The file is looked up (and verified by its MD5 hash) in
    `keras_cache_dir() / "models"` first, exactly as `keras.applications` does.

    Args:
        name: encoder name, a key of `ENCODERS`.

    Returns:
        str, the local path of the weights file.

    Raises:
        ValueError: when the file is not in the cache and cannot be downloaded
            (no internet access, proxy, ...), naming the URL and where to put the
            file by hand.
    """
    check_encoder(name)
    spec = ENCODERS[name]
    cache_dir = keras_cache_dir()
    target = cache_dir / "models" / spec.weights_file
    try:
        return keras.utils.get_file(
            spec.weights_file,
            spec.weights_url,
            cache_subdir="models",
            file_hash=spec.weights_hash,
            cache_dir=str(cache_dir),
        )
    except Exception as error:  # Keras raises a bare Exception for a failed download.
        raise ValueError(
            f"The ImageNet weights of encoder '{name}' could not be downloaded from "
            f"{spec.weights_url} ({error}). Without internet access, download that file "
            f"on another machine and copy it to {target} (the Keras cache, "
            "$KERAS_HOME/models or ~/.keras/models), or build the model with weights=None."
        ) from error


def build_encoder(name, input_shape=(None, None, 3), weights=None, output_stride=32):
    """Builds a `keras.applications` network as a pyramid encoder.

    See the module docstring for what is changed and why. The encoder takes
    *normalised* input (see `input_statistics`); the segmentation models put a
    `Normalization` layer in front of it.

    Args:
        name: a key of `ENCODERS`, e.g. `"efficientnetb0"`, `"resnet50"`.
        input_shape: `(height, width, channels)`; height and width `None` for any
            size, channels >= 1.
        weights: `None` (random initialisation), `"imagenet"` (downloaded through
            Keras, see `download_weights`) or the path of that `.h5` file.
        output_stride: 8, 16 or 32, the stride of the coarsest level; finer
            strides are obtained by dilation.

    Returns:
        A functional `keras.Model` named `"encoder"` mapping float `(B, H, W, C)` to
        the dict `{"P2": (B, H/4, W/4, C2), "P3": ..., "P4": ..., "P5": ...}`
        (sizes rounded up; levels below the output stride keep its size).

    Raises:
        ValueError: for an unknown encoder, a bad argument, or weights that cannot
            be downloaded.
    """
    check_encoder(name)
    input_shape = check_input_shape(input_shape)
    check_weights("weights", weights)
    check_choice("output_stride", output_stride, OUTPUT_STRIDES)
    spec = ENCODERS[name]
    application = getattr(keras.applications, spec.application)
    weights_path = download_weights(name) if weights == "imagenet" else weights
    try:
        base = application(
            include_top=False,
            weights=weights_path,
            input_shape=(None, None, 3),
            **dict(spec.options),
        )
    except (ValueError, OSError) as error:
        if weights_path is None:
            raise
        raise ValueError(
            f"{weights_path}: not the keras.applications weights of encoder '{name}' "
            f"({spec.weights_file}): {error}"
        ) from error
    config = rebuild_config(base.get_config(), input_shape, output_stride)
    body = keras.Model.from_config(config)
    if weights_path is not None:
        _copy_weights(base, body, input_shape[-1], bgr=spec.bgr)
    layer_names = [layer.name for layer in base.layers]
    outputs = {}
    for level, pattern in zip(("P2", "P3", "P4"), spec.taps):
        matches = [layer_name for layer_name in layer_names if re.search(pattern, layer_name)]
        outputs[level] = body.get_layer(matches[-1]).output
    outputs["P5"] = body.output
    return keras.Model(body.input, outputs, name="encoder")


def _copy_weights(source, target, channels, bgr):
    """Copies the weights of a 3-channel network into its C-channel rebuilt twin.

    Layers are matched by name. The first convolution's kernel is flipped from
    BGR to RGB order when `bgr`, then adapted to `channels` by `adapt_input_kernel`.
    """
    first_convolution = True
    for layer in source.layers:
        values = layer.get_weights()
        if not values or layer.__class__.__name__ in PREPROCESSING_LAYERS:
            continue
        if first_convolution and isinstance(layer, keras.layers.Conv2D):
            first_convolution = False
            kernel = values[0][:, :, ::-1, :] if bgr else values[0]
            values = [adapt_input_kernel(kernel, channels), *values[1:]]
        target.get_layer(layer.name).set_weights(values)
    logger.info("copied ImageNet weights into the %d-channel encoder", channels)
