"""DDRNet: deep dual-resolution networks for real-time semantic segmentation.

Paper: Hong, Pan, Sun and Jia, "Deep Dual-resolution Networks for Real-time and
Accurate Semantic Segmentation of Road Scenes", 2021,
https://arxiv.org/abs/2101.06085. Official code: https://github.com/ydhongHIT/DDRNet
(`segmentation/DDRNet_23_slim.py`, `segmentation/DDRNet_23.py`).

The network keeps two branches after a shared ResNet-like trunk: a high-resolution
branch at 1/8 of the input size and a low-resolution branch that goes down to 1/64.
Twice (after stage 3 and stage 4) the branches exchange information ("bilateral
fusion"): the low-resolution features are compressed by a 1x1 convolution,
upsampled and added to the high-resolution branch, and the high-resolution
features are downsampled by strided 3x3 convolutions and added to the
low-resolution branch. A Deep Aggregation Pyramid Pooling Module (DAPPM) gathers
context at 1/64; its output is upsampled, added to the high-resolution branch and
fed to the segmentation head, whose 1/8-resolution logits are bilinearly
upsampled to the input size.

Layers, widths, ReLU placement and trainable parameters are those of the
official code (DDRNet-23-slim: 5,695,987 trainable parameters with 19 classes).
Three details follow Keras conventions instead of PyTorch ones; none changes the
parameters or the FLOPs:

* stride-2 convolutions and the DAPPM average pools use `padding="same"`, which
  on even sizes pads one pixel less at the top/left than PyTorch's symmetric
  padding, and the pools average over valid pixels only (PyTorch's
  `count_include_pad=True` counts the zero padding);
* upsampled features are resized to the exact size of the tensor they are added
  to (`ceil(H / 8)` at 1/8), so any input size works, not only multiples of 64;
* the model normalises its 0..255 input itself, as its first layer.
"""

import keras

from models.arguments import (
    channel_statistics,
    check_bool,
    check_input_shape,
    check_positive_int,
)
from models.layers import ResizeToMatch

# PyTorch `momentum=0.1` (weight of the new batch) is Keras `momentum=0.9`.
BATCH_NORM_MOMENTUM = 0.9
BATCH_NORM_EPSILON = 1e-5

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
# Default statistics for inputs that are not 3-channel RGB (thermal, RGB + NIR, ...):
# maps 0..255 to roughly -2..2, like the ImageNet statistics do for RGB.
DEFAULT_MEAN = 127.5
DEFAULT_STD = 64.0

BOTTLENECK_EXPANSION = 2


@keras.saving.register_keras_serializable(package="semseg")
class DDRNet(keras.Model):
    """Deep Dual-Resolution Network (DDRNet-23 family) for semantic segmentation.

    Paper: https://arxiv.org/abs/2101.06085. Use the builders `ddrnet23_slim` and
    `ddrnet23` for the published configurations.

    Args:
        num_classes: int >= 1, number of classes (channels of the logits).
        input_shape: `(height, width, channels)`; height and width may be `None`
            (dynamic, the default) or positive ints, channels is an int >= 1.
        planes: int, width of the first stage (32 for DDRNet-23-slim, 64 for
            DDRNet-23); the high-resolution branch has `2 * planes` channels and
            the low-resolution branch up to `16 * planes`.
        spp_planes: int, width of each DAPPM branch.
        head_planes: int, width of the hidden layer of the segmentation heads.
        aux_head: bool; when True, the model has a second output, the logits of
            an auxiliary head on the high-resolution branch after the first
            bilateral fusion (the official `augment=True`), for deep supervision.
        mean: float or one float per channel, the pixel mean subtracted by the
            first layer. `None` means ImageNet `(123.675, 116.28, 103.53)` for 3
            channels and `127.5` per channel otherwise.
        std: float or one float per channel (> 0), the pixel standard deviation
            the first layer divides by. `None` means ImageNet
            `(58.395, 57.12, 57.375)` for 3 channels and `64.0` otherwise.
        **kwargs: passed to `keras.Model` (e.g. `name`, `trainable`).

    Call arguments:
        images: float32 tensor `(B, H, W, C)` of pixel values in 0..255.

    Returns:
        Logits, float32 `(B, H, W, num_classes)`, from the layer named `logits`;
        with `aux_head=True`, the list `[logits, aux_logits]` where `aux_logits`
        (layer `aux_logits`) has the same shape.

    Example:
        >>> model = DDRNet(num_classes=19, planes=32, spp_planes=128, head_planes=64)
        >>> model(np.zeros((1, 64, 96, 3), "float32")).shape
        TensorShape([1, 64, 96, 19])
    """

    def __init__(
        self,
        num_classes,
        input_shape=(None, None, 3),
        planes=32,
        spp_planes=128,
        head_planes=64,
        aux_head=False,
        mean=None,
        std=None,
        **kwargs,
    ):
        image_shape = check_input_shape(input_shape)
        check_positive_int("num_classes", num_classes)
        check_positive_int("planes", planes)
        check_positive_int("spp_planes", spp_planes)
        check_positive_int("head_planes", head_planes)
        check_bool("aux_head", aux_head)
        channels = image_shape[-1]
        rgb = channels == 3
        mean = channel_statistics("mean", mean, channels, IMAGENET_MEAN if rgb else DEFAULT_MEAN)
        std = channel_statistics("std", std, channels, IMAGENET_STD if rgb else DEFAULT_STD)
        if min(std) <= 0:
            raise ValueError(f"`std` must be positive for every channel. Received: std={std}")
        highres_planes = planes * 2

        # === Functional Model ===
        images = keras.Input(shape=image_shape, dtype="float32", name="images")
        # Constants, not weights: the normalisation has no (trainable) parameters.
        x = keras.layers.Normalization(
            mean=mean, variance=[value * value for value in std], name="normalize"
        )(images)

        # Stem, 1/4. The official stem convolutions keep PyTorch's default bias.
        x = _conv_bn(x, planes, 3, strides=2, use_bias=True, name="stem_conv1")
        x = _relu("stem_relu1")(x)
        x = _conv_bn(x, planes, 3, strides=2, use_bias=True, name="stem_conv2")
        x = _relu("stem_relu2")(x)

        # Shared trunk: layer1 at 1/4, layer2 at 1/8.
        x = _basic_stage(x, planes, strides=1, name="layer1")
        x = _basic_stage(_relu("layer1_relu")(x), planes * 2, strides=2, name="layer2")
        layer2_relu = _relu("layer2_relu")(x)

        # Stage 3: low branch to 1/16, high branch stays at 1/8, then fusion.
        low = _basic_stage(layer2_relu, planes * 4, strides=2, name="layer3")
        high = _basic_stage(layer2_relu, highres_planes, strides=1, name="layer3_high")
        down = _conv_bn(_relu("down3_relu")(high), planes * 4, 3, strides=2, name="down3")
        compressed = _conv_bn(
            _relu("compression3_relu")(low), highres_planes, 1, name="compression3"
        )
        compressed = ResizeToMatch(name="compression3_resize")(compressed, high)
        low = keras.layers.Add(name="fusion3_low")([low, down])
        high = keras.layers.Add(name="fusion3_high")([high, compressed])
        aux_features = high

        # Stage 4: low branch to 1/32, high branch at 1/8, then fusion.
        low_stage4 = _basic_stage(_relu("layer4_relu")(low), planes * 8, strides=2, name="layer4")
        high = _basic_stage(
            _relu("layer4_high_relu")(high), highres_planes, strides=1, name="layer4_high"
        )
        down = _conv_bn(_relu("down4_relu")(high), planes * 4, 3, strides=2, name="down4_1")
        down = _conv_bn(_relu("down4_1_relu")(down), planes * 8, 3, strides=2, name="down4_2")
        compressed = _relu("compression4_relu")(low_stage4)
        compressed = _conv_bn(compressed, highres_planes, 1, name="compression4")
        compressed = ResizeToMatch(name="compression4_resize")(compressed, high)
        low = keras.layers.Add(name="fusion4_low")([low_stage4, down])
        high = keras.layers.Add(name="fusion4_high")([high, compressed])

        # Stage 5: one bottleneck per branch (low branch to 1/64), DAPPM, merge.
        high = _bottleneck(_relu("layer5_high_relu")(high), highres_planes, 1, "layer5_high")
        low = _bottleneck(_relu("layer5_relu")(low), planes * 8, 2, "layer5")
        context = _dappm(low, spp_planes, planes * 4, name="spp")
        context = ResizeToMatch(name="spp_resize")(context, high)
        x = keras.layers.Add(name="context_add")([high, context])

        # Heads at 1/8, upsampled to the input size in float32.
        x = _segment_head(x, head_planes, num_classes, name="head")
        logits = ResizeToMatch(dtype="float32", name="logits")(x, images)
        outputs = logits
        if aux_head:
            aux = _segment_head(aux_features, head_planes, num_classes, name="aux_head")
            aux_logits = ResizeToMatch(dtype="float32", name="aux_logits")(aux, images)
            outputs = [logits, aux_logits]

        super().__init__(inputs=images, outputs=outputs, **kwargs)

        # === Config ===
        self.num_classes = num_classes
        self.image_shape = image_shape
        self.planes = planes
        self.spp_planes = spp_planes
        self.head_planes = head_planes
        self.aux_head = aux_head
        self.mean = mean
        self.std = std

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "num_classes": self.num_classes,
            "input_shape": list(self.image_shape),
            "planes": self.planes,
            "spp_planes": self.spp_planes,
            "head_planes": self.head_planes,
            "aux_head": self.aux_head,
            "mean": list(self.mean),
            "std": list(self.std),
        }


def ddrnet23_slim(num_classes, input_shape=(None, None, 3), aux_head=False, **options):
    """DDRNet-23-slim: 32 base channels, 5.7M parameters, the real-time model.

    `DualResNet(BasicBlock, [2, 2, 2, 2], planes=32, spp_planes=128, head_planes=64)`
    of the official code; 5,695,987 trainable parameters with 19 classes
    (5,734,342 with the auxiliary head) and 10.65 GFLOPs at 480x640.
    Paper: https://arxiv.org/abs/2101.06085.

    Args:
        num_classes: int >= 1, number of classes.
        input_shape: `(height, width, channels)`, height/width `None` for any size.
        aux_head: bool, add the auxiliary head and return `[logits, aux_logits]`.
        **options: `mean`, `std` (see `DDRNet`) and `name` (default
            `"ddrnet23_slim"`).

    Returns:
        `DDRNet` (a functional `keras.Model`) mapping float32 `(B, H, W, C)`
        pixels in 0..255 to float32 logits `(B, H, W, num_classes)`.
    """
    return _build_ddrnet(
        "ddrnet23_slim", num_classes, input_shape, aux_head, options, planes=32, head_planes=64
    )


def ddrnet23(num_classes, input_shape=(None, None, 3), aux_head=False, **options):
    """DDRNet-23: 64 base channels, 20.1M parameters, the accurate model.

    `DualResNet(BasicBlock, [2, 2, 2, 2], planes=64, spp_planes=128, head_planes=128)`
    of the official code; 20,148,947 trainable parameters with 19 classes.
    Paper: https://arxiv.org/abs/2101.06085.

    Args:
        num_classes: int >= 1, number of classes.
        input_shape: `(height, width, channels)`, height/width `None` for any size.
        aux_head: bool, add the auxiliary head and return `[logits, aux_logits]`.
        **options: `mean`, `std` (see `DDRNet`) and `name` (default `"ddrnet23"`).

    Returns:
        `DDRNet` (a functional `keras.Model`) mapping float32 `(B, H, W, C)`
        pixels in 0..255 to float32 logits `(B, H, W, num_classes)`.
    """
    return _build_ddrnet(
        "ddrnet23", num_classes, input_shape, aux_head, options, planes=64, head_planes=128
    )


BUILDER_OPTIONS = ("mean", "std", "name")


def _build_ddrnet(variant, num_classes, input_shape, aux_head, options, planes, head_planes):
    unknown = sorted(set(options) - set(BUILDER_OPTIONS))
    if unknown:
        raise ValueError(
            f"Unknown option(s) {unknown} for model '{variant}'; valid options are "
            f"{list(BUILDER_OPTIONS)}. Received: options={options}"
        )
    options = {"name": variant, **options}
    return DDRNet(
        num_classes=num_classes,
        input_shape=input_shape,
        planes=planes,
        spp_planes=128,
        head_planes=head_planes,
        aux_head=aux_head,
        **options,
    )


# --- Building blocks (functional: each call creates its layers and applies them). ---


def _kernel_initializer():
    # The official code: kaiming_normal_(mode="fan_out", nonlinearity="relu").
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal"
    )


def _conv(x, filters, kernel_size, strides=1, use_bias=False, name=None):
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=use_bias,
        kernel_initializer=_kernel_initializer(),
        name=name,
    )(x)


def _batch_norm(x, name):
    return keras.layers.BatchNormalization(
        momentum=BATCH_NORM_MOMENTUM, epsilon=BATCH_NORM_EPSILON, name=name
    )(x)


def _relu(name):
    return keras.layers.ReLU(name=name)


def _conv_bn(x, filters, kernel_size, strides=1, use_bias=False, name=None):
    """Convolution + BatchNorm, layers `{name}` and `{name}_bn`."""
    x = _conv(x, filters, kernel_size, strides=strides, use_bias=use_bias, name=name)
    return _batch_norm(x, name=f"{name}_bn")


def _bn_relu_conv(x, filters, kernel_size, name):
    """Pre-activation BatchNorm + ReLU + convolution without bias (DAPPM, heads)."""
    x = _batch_norm(x, name=f"{name}_bn")
    x = _relu(f"{name}_relu")(x)
    return _conv(x, filters, kernel_size, name=f"{name}_conv")


def _shortcut(x, filters, strides, name):
    """Identity, or a 1x1 projection + BatchNorm when the shape changes."""
    if strides == 1 and x.shape[-1] == filters:
        return x
    return _conv_bn(x, filters, 1, strides=strides, name=f"{name}_downsample")


def _basic_block(x, filters, strides, final_relu, name):
    """ResNet basic block: two 3x3 convolutions and a residual connection."""
    shortcut = _shortcut(x, filters, strides, name)
    x = _conv_bn(x, filters, 3, strides=strides, name=f"{name}_conv1")
    x = _relu(f"{name}_relu1")(x)
    x = _conv_bn(x, filters, 3, name=f"{name}_conv2")
    x = keras.layers.Add(name=f"{name}_add")([x, shortcut])
    if final_relu:
        x = _relu(f"{name}_relu2")(x)
    return x


def _basic_stage(x, filters, strides, name, num_blocks=2):
    """The official `_make_layer(BasicBlock, ...)`: the last of several blocks has no final ReLU."""
    for index in range(num_blocks):
        final_relu = index == 0 or index < num_blocks - 1
        x = _basic_block(
            x,
            filters,
            strides=strides if index == 0 else 1,
            final_relu=final_relu,
            name=f"{name}_block{index + 1}",
        )
    return x


def _bottleneck(x, filters, strides, name):
    """ResNet bottleneck (expansion 2) without final ReLU, as `layer5`/`layer5_`."""
    output_filters = filters * BOTTLENECK_EXPANSION
    shortcut = _shortcut(x, output_filters, strides, name)
    x = _conv_bn(x, filters, 1, name=f"{name}_conv1")
    x = _relu(f"{name}_relu1")(x)
    x = _conv_bn(x, filters, 3, strides=strides, name=f"{name}_conv2")
    x = _relu(f"{name}_relu2")(x)
    x = _conv_bn(x, output_filters, 1, name=f"{name}_conv3")
    return keras.layers.Add(name=f"{name}_add")([x, shortcut])


def _dappm(x, branch_planes, output_planes, name):
    """Deep Aggregation Pyramid Pooling Module (paper section 3.3, figure 5).

    Args:
        x: `(B, h, w, C)` low-resolution features (1/64 of the input).
        branch_planes: int, channels of each of the five scales.
        output_planes: int, output channels.
        name: str, prefix of the layer names.

    Returns:
        `(B, h, w, output_planes)` context features.
    """
    scales = [_bn_relu_conv(x, branch_planes, 1, name=f"{name}_scale0")]
    for index, (pool_size, strides) in enumerate(((5, 2), (9, 4), (17, 8)), start=1):
        pooled = keras.layers.AveragePooling2D(
            pool_size, strides=strides, padding="same", name=f"{name}_scale{index}_pool"
        )(x)
        pooled = _bn_relu_conv(pooled, branch_planes, 1, name=f"{name}_scale{index}")
        pooled = ResizeToMatch(name=f"{name}_scale{index}_resize")(pooled, x)
        merged = keras.layers.Add(name=f"{name}_process{index}_add")([pooled, scales[-1]])
        scales.append(_bn_relu_conv(merged, branch_planes, 3, name=f"{name}_process{index}"))
    # Global context: bilinear upsampling of a 1x1 map is a broadcast, so add directly.
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_scale4_pool")(x)
    pooled = _bn_relu_conv(pooled, branch_planes, 1, name=f"{name}_scale4")
    merged = keras.layers.Add(name=f"{name}_process4_add")([pooled, scales[-1]])
    scales.append(_bn_relu_conv(merged, branch_planes, 3, name=f"{name}_process4"))

    merged = keras.layers.Concatenate(name=f"{name}_concat")(scales)
    compressed = _bn_relu_conv(merged, output_planes, 1, name=f"{name}_compression")
    shortcut = _bn_relu_conv(x, output_planes, 1, name=f"{name}_shortcut")
    return keras.layers.Add(name=f"{name}_add")([compressed, shortcut])


def _segment_head(x, head_planes, num_classes, name):
    """The official `segmenthead`: BN-ReLU-3x3 conv, BN-ReLU-1x1 conv with bias."""
    x = _bn_relu_conv(x, head_planes, 3, name=f"{name}_1")
    x = _batch_norm(x, name=f"{name}_2_bn")
    x = _relu(f"{name}_2_relu")(x)
    return _conv(x, num_classes, 1, use_bias=True, name=f"{name}_2_conv")
