"""Building blocks shared by the decoder heads (DeepLabV3+, semantic FPN, OCR).

Each function creates its layers and applies them (functional style); layer
names are `{name}_conv`, `{name}_bn`, `{name}_relu`, ... so every layer of a
head has a readable, unique name.
"""

import keras

from models.encoders import build_encoder, input_statistics
from models.layers import ResizeToMatch

# PyTorch `momentum=0.1` (weight of the new batch), as in DDRNet and MMSegmentation.
BATCH_NORM_MOMENTUM = 0.9
BATCH_NORM_EPSILON = 1e-5


def conv_bn_relu(x, filters, kernel_size, name, dilation_rate=1, separable=False):
    """Convolution without bias + BatchNorm + ReLU.

    With `separable=True` and a spatial kernel, a depthwise-separable convolution
    as in DeepLabV3+ (`split_separable_conv2d` of the official code): depthwise
    convolution + BatchNorm + ReLU, then 1x1 convolution + BatchNorm + ReLU.

    Args:
        x: `(B, h, w, C)` features.
        filters: int, output channels.
        kernel_size: int, square kernel size.
        name: str, prefix of the layer names.
        dilation_rate: int, atrous rate of the (depthwise) convolution.
        separable: bool, depthwise-separable instead of a full convolution.

    Returns:
        `(B, h, w, filters)` features.
    """
    if separable and kernel_size > 1:
        x = keras.layers.DepthwiseConv2D(
            kernel_size,
            padding="same",
            dilation_rate=dilation_rate,
            use_bias=False,
            depthwise_initializer="he_normal",
            name=f"{name}_depthwise",
        )(x)
        x = batch_norm(x, name=f"{name}_depthwise_bn")
        x = keras.layers.ReLU(name=f"{name}_depthwise_relu")(x)
        kernel_size, dilation_rate = 1, 1
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        padding="same",
        dilation_rate=dilation_rate,
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    x = batch_norm(x, name=f"{name}_bn")
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def batch_norm(x, name):
    return keras.layers.BatchNormalization(
        momentum=BATCH_NORM_MOMENTUM, epsilon=BATCH_NORM_EPSILON, name=name
    )(x)


def classifier(x, num_classes, dropout, name):
    """Dropout + 1x1 convolution with bias: the per-pixel class logits `(B, h, w, K)`."""
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return keras.layers.Conv2D(num_classes, 1, name=f"{name}_conv")(x)


def fcn_head(x, filters, num_classes, dropout, name):
    """The FCN head (3x3 convolution + BN + ReLU, dropout, 1x1 classifier).

    Used as the auxiliary head of the encoder-decoder models (MMSegmentation's
    `FCNHead` with `num_convs=1` on the stride-16 features) and as OCRNet's
    soft object-region head.

    Returns:
        `(B, h, w, num_classes)` logits at the resolution of `x`.
    """
    x = conv_bn_relu(x, filters, 3, name=f"{name}_1")
    return classifier(x, num_classes, dropout, name=f"{name}_classifier")


def upsample_logits(logits, images, name):
    """Bilinear upsampling of logits to the input size, in float32 (mixed precision)."""
    return ResizeToMatch(dtype="float32", name=name)(logits, images)


def encode(images, encoder, encoder_weights, output_stride, mean, std):
    """Normalises 0..255 images and runs a pyramid encoder on them.

    Args:
        images: the model's `keras.Input`, float32 `(B, H, W, C)` in 0..255.
        encoder: encoder name, a key of `models.encoders.ENCODERS`.
        encoder_weights: `None` or `"imagenet"`.
        output_stride: 8, 16 or 32.
        mean: `None` or per-channel means (see `models.encoders.input_statistics`).
        std: `None` or per-channel standard deviations.

    Returns:
        `(features, mean, std)`: the dict of pyramid features `P2..P5` and the
        statistics actually used (lists of C floats).
    """
    channels = images.shape[-1]
    mean, std = input_statistics(encoder, channels, mean, std)
    x = keras.layers.Normalization(
        mean=mean, variance=[value * value for value in std], name="normalize"
    )(images)
    encoder_model = build_encoder(
        encoder,
        input_shape=tuple(images.shape[1:]),
        weights=encoder_weights,
        output_stride=output_stride,
    )
    return encoder_model(x), mean, std
