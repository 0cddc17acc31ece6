"""ResNet-style blocks of the dual-resolution networks (DDRNet, PIDNet).

Each function creates its layers and applies them (functional style). Layers,
widths, ReLU placement and biases are those of the official code
(ydhongHIT/DDRNet, XuJiacong/PIDNet `models/model_utils.py`), so the authors'
checkpoints map onto them tensor by tensor (`semseg.weights.pretrained`).

`padding` says how strided layers pad:

* `"symmetric"`: PyTorch's `padding=k // 2` on every side (an explicit
  `ZeroPadding2D` then a `"valid"` convolution or pool), and average pools that
  count the padded zeros (`count_include_pad=True`). This is the official
  arithmetic, which converted checkpoints need to reproduce the authors' outputs.
* `"same"`: Keras' `padding="same"`, which on even sizes pads one pixel less at
  the top/left, with pools averaging over valid pixels only. DDRNet checkpoints
  written before the option existed were trained this way.

Stride-1 convolutions with odd kernels are the same in both modes.
"""

import keras

from models.layers import GroupedConv2D, ResizeToMatch

PADDINGS = ("symmetric", "same")
# PyTorch `momentum=0.1` (weight of the new batch) is Keras `momentum=0.9`.
BATCH_NORM_MOMENTUM = 0.9
BATCH_NORM_EPSILON = 1e-5
BOTTLENECK_EXPANSION = 2


def kernel_initializer():
    # The official code: kaiming_normal_(mode="fan_out", nonlinearity="relu").
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal"
    )


def conv(
    x, filters, kernel_size, strides=1, use_bias=False, padding="symmetric", name=None, groups=1
):
    """A convolution, padded as `padding` says (see the module docstring)."""
    keras_padding = "same"
    if padding == "symmetric" and strides > 1 and kernel_size > 1:
        x = keras.layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
        keras_padding = "valid"
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=keras_padding,
        use_bias=use_bias,
        kernel_initializer=kernel_initializer(),
        name=name,
    )(x)


def average_pool(x, pool_size, strides, padding, name):
    """`nn.AvgPool2d(pool_size, strides, padding=pool_size // 2)` (symmetric) or Keras "same"."""
    if padding == "symmetric":
        x = keras.layers.ZeroPadding2D(pool_size // 2, name=f"{name}_pad")(x)
        return keras.layers.AveragePooling2D(pool_size, strides=strides, name=name)(x)
    return keras.layers.AveragePooling2D(pool_size, strides=strides, padding="same", name=name)(x)


def batch_norm(x, name):
    return keras.layers.BatchNormalization(
        momentum=BATCH_NORM_MOMENTUM, epsilon=BATCH_NORM_EPSILON, name=name
    )(x)


def relu(name):
    return keras.layers.ReLU(name=name)


def conv_bn(x, filters, kernel_size, strides=1, use_bias=False, padding="symmetric", name=None):
    """Convolution + BatchNorm, layers `{name}` and `{name}_bn`."""
    x = conv(x, filters, kernel_size, strides, use_bias=use_bias, padding=padding, name=name)
    return batch_norm(x, name=f"{name}_bn")


def bn_relu_conv(x, filters, kernel_size, name, groups=1):
    """Pre-activation BatchNorm + ReLU + stride-1 convolution without bias (DAPPM, heads)."""
    x = batch_norm(x, name=f"{name}_bn")
    x = relu(f"{name}_relu")(x)
    if groups > 1:
        return GroupedConv2D(
            filters, kernel_size, groups, kernel_initializer(), name=f"{name}_conv"
        )(x)
    return conv(x, filters, kernel_size, name=f"{name}_conv")


def shortcut(x, filters, strides, name):
    """Identity, or a 1x1 projection + BatchNorm when the shape changes."""
    if strides == 1 and x.shape[-1] == filters:
        return x
    return conv_bn(x, filters, 1, strides=strides, name=f"{name}_downsample")


def basic_block(x, filters, strides, final_relu, padding, name):
    """ResNet basic block: two 3x3 convolutions and a residual connection."""
    residual = shortcut(x, filters, strides, name)
    x = conv_bn(x, filters, 3, strides=strides, padding=padding, name=f"{name}_conv1")
    x = relu(f"{name}_relu1")(x)
    x = conv_bn(x, filters, 3, name=f"{name}_conv2")
    x = keras.layers.Add(name=f"{name}_add")([x, residual])
    if final_relu:
        x = relu(f"{name}_relu2")(x)
    return x


def basic_stage(x, filters, strides, name, num_blocks=2, padding="symmetric"):
    """The official `_make_layer(BasicBlock, ...)`: the last of several blocks has no final ReLU."""
    for index in range(num_blocks):
        final_relu = index == 0 or index < num_blocks - 1
        x = basic_block(
            x,
            filters,
            strides=strides if index == 0 else 1,
            final_relu=final_relu,
            padding=padding,
            name=f"{name}_block{index + 1}",
        )
    return x


def bottleneck(x, filters, strides, name, padding="symmetric"):
    """ResNet bottleneck (expansion 2) without final ReLU (the official default `no_relu=True`)."""
    output_filters = filters * BOTTLENECK_EXPANSION
    residual = shortcut(x, output_filters, strides, name)
    x = conv_bn(x, filters, 1, name=f"{name}_conv1")
    x = relu(f"{name}_relu1")(x)
    x = conv_bn(x, filters, 3, strides=strides, padding=padding, name=f"{name}_conv2")
    x = relu(f"{name}_relu2")(x)
    x = conv_bn(x, output_filters, 1, name=f"{name}_conv3")
    return keras.layers.Add(name=f"{name}_add")([x, residual])


def bottleneck_stage(x, filters, strides, name, num_blocks=1, padding="symmetric"):
    """The official `_make_layer(Bottleneck, ...)`: blocks `{name}` or `{name}_block{i}`."""
    if num_blocks == 1:
        return bottleneck(x, filters, strides, name, padding=padding)
    for index in range(num_blocks):
        x = bottleneck(
            x, filters, strides if index == 0 else 1, f"{name}_block{index + 1}", padding=padding
        )
    return x


def pyramid_pools(x, branch_planes, padding, name):
    """The four pooled scales of DAPPM and PAPPM: `(pooled, 1x1-projected)` per scale.

    Scales 1-3 are average pools (5, 9, 17 with strides 2, 4, 8), scale 4 the
    global average; each goes through BN-ReLU-1x1 conv and is resized to `x`.
    """
    scales = []
    for index, (pool_size, strides) in enumerate(((5, 2), (9, 4), (17, 8)), start=1):
        pooled = average_pool(x, pool_size, strides, padding, name=f"{name}_scale{index}_pool")
        pooled = bn_relu_conv(pooled, branch_planes, 1, name=f"{name}_scale{index}")
        scales.append(ResizeToMatch(name=f"{name}_scale{index}_resize")(pooled, x))
    # Global context: bilinear upsampling of a 1x1 map is a broadcast, added directly.
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_scale4_pool")(x)
    scales.append(bn_relu_conv(pooled, branch_planes, 1, name=f"{name}_scale4"))
    return scales


def dappm(x, branch_planes, output_planes, name, padding="symmetric"):
    """Deep Aggregation Pyramid Pooling Module (DDRNet paper section 3.3, figure 5).

    Args:
        x: `(B, h, w, C)` low-resolution features (1/64 of the input).
        branch_planes: int, channels of each of the five scales.
        output_planes: int, output channels.
        name: str, prefix of the layer names.
        padding: `"symmetric"` or `"same"` (see the module docstring).

    Returns:
        `(B, h, w, output_planes)` context features.
    """
    scales = [bn_relu_conv(x, branch_planes, 1, name=f"{name}_scale0")]
    for index, pooled in enumerate(pyramid_pools(x, branch_planes, padding, name), start=1):
        merged = keras.layers.Add(name=f"{name}_process{index}_add")([pooled, scales[-1]])
        scales.append(bn_relu_conv(merged, branch_planes, 3, name=f"{name}_process{index}"))
    merged = keras.layers.Concatenate(name=f"{name}_concat")(scales)
    compressed = bn_relu_conv(merged, output_planes, 1, name=f"{name}_compression")
    residual = bn_relu_conv(x, output_planes, 1, name=f"{name}_shortcut")
    return keras.layers.Add(name=f"{name}_add")([compressed, residual])


def pappm(x, branch_planes, output_planes, name, padding="symmetric"):
    """Parallel Aggregation PPM (PIDNet paper section 3.3): DAPPM's scales in parallel.

    Each pooled scale is added to the 1x1 projection of `x`; the four sums go
    through one grouped 3x3 convolution (4 groups) instead of four sequential ones.

    Returns:
        `(B, h, w, output_planes)` context features.
    """
    base = bn_relu_conv(x, branch_planes, 1, name=f"{name}_scale0")
    sums = [
        keras.layers.Add(name=f"{name}_scale{index}_add")([pooled, base])
        for index, pooled in enumerate(pyramid_pools(x, branch_planes, padding, name), start=1)
    ]
    merged = keras.layers.Concatenate(name=f"{name}_scales")(sums)
    processed = bn_relu_conv(merged, branch_planes * 4, 3, name=f"{name}_process", groups=4)
    merged = keras.layers.Concatenate(name=f"{name}_concat")([base, processed])
    compressed = bn_relu_conv(merged, output_planes, 1, name=f"{name}_compression")
    residual = bn_relu_conv(x, output_planes, 1, name=f"{name}_shortcut")
    return keras.layers.Add(name=f"{name}_add")([compressed, residual])


def segment_head(x, head_planes, num_classes, name):
    """The official `segmenthead`: BN-ReLU-3x3 conv, BN-ReLU-1x1 conv with bias."""
    x = bn_relu_conv(x, head_planes, 3, name=f"{name}_1")
    x = batch_norm(x, name=f"{name}_2_bn")
    x = relu(f"{name}_2_relu")(x)
    return conv(x, num_classes, 1, use_bias=True, name=f"{name}_2_conv")
