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

Layers, widths, ReLU placement, padding and trainable parameters are those of
the official code (DDRNet-23-slim: 5,695,987 trainable parameters with 19
classes), so the authors' checkpoints convert exactly (`convert_weights.py`,
`train.py --weights`). Two details differ, neither changing parameters, FLOPs or
the outputs at sizes the official code accepts:

* upsampled features are resized to the exact size of the tensor they are added
  to (`ceil(H / 8)` at 1/8), so any input size works, not only multiples of 64;
* the model normalises its 0..255 input itself, as its first layer (ImageNet
  mean and std in RGB order, as the authors' pipelines do).

The builders use `padding="same"` (Keras padding of the strided layers, see
`models/residual_blocks.py`), with which the recipes were measured and int8
exports keep their accuracy; `padding="symmetric"` is the official arithmetic,
which the authors' checkpoints need to reproduce their outputs (`train.py
--weights FILE.pth` and `convert_weights.py` build it). Checkpoints written
before the option existed load with "same".

The builders `ddrnet23_slim`, `ddrnet23` and `ddrnet_lite` are entries of `models.MODELS`
(arguments and outputs as documented there): each returns a `DDRNet` named after itself
and takes `mean`, `std`, `padding` (see `DDRNet`) and `name` as `**options`.
"""

import keras

from models.arguments import (
    channel_statistics,
    check_bool,
    check_choice,
    check_input_shape,
    check_options,
    check_positive_int,
)
from models.layers import ResizeToMatch
from models.residual_blocks import (
    PADDINGS,
    basic_stage,
    bottleneck,
    conv_bn,
    dappm,
    relu,
    segment_head,
)
from models.segmenter import Segmenter

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
# Default statistics for inputs that are not 3-channel RGB (thermal, RGB + NIR, ...):
# maps 0..255 to roughly -2..2, like the ImageNet statistics do for RGB.
DEFAULT_MEAN = 127.5
DEFAULT_STD = 64.0


def input_statistics(channels, mean=None, std=None):
    """The per-channel `(mean, std)` the first layer normalises 0..255 pixels with.

    `None` means the ImageNet statistics (RGB) for 3 channels, as the authors'
    pipelines use, and `DEFAULT_MEAN` / `DEFAULT_STD` for other channel counts.

    Returns:
        `(mean, std)`, two lists of `channels` floats.

    Raises:
        ValueError: for a malformed value or a non-positive std.
    """
    rgb = channels == 3
    mean = channel_statistics("mean", mean, channels, IMAGENET_MEAN if rgb else DEFAULT_MEAN)
    std = channel_statistics("std", std, channels, IMAGENET_STD if rgb else DEFAULT_STD)
    if min(std) <= 0:
        raise ValueError(f"`std` must be positive for every channel. Received: std={std}")
    return mean, std


@keras.saving.register_keras_serializable(package="semseg")
class DDRNet(Segmenter):
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
        padding: `"symmetric"` (the official padding, the default of the class) or
            `"same"` (Keras padding of the strided layers; the builders' default and
            that of checkpoints saved without this option), see
            `models/residual_blocks.py`.
        stage_blocks: four ints >= 1, the basic blocks of layer1, layer2, layer3
            (each branch) and layer4 (each branch): the official `layers`,
            `(2, 2, 2, 2)` for DDRNet-23 and -23-slim.
        align_corners: bool, upsample the logits to the input size with
            `align_corners=True` (MMSegmentation's PIDNet head and the authors' PIDNet
            evaluation) instead of half-pixel centres; the resizes inside the network
            keep half-pixel centres, as both official codes do.
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
        padding="symmetric",
        stage_blocks=(2, 2, 2, 2),
        align_corners=False,
        **kwargs,
    ):
        input_shape = check_input_shape(input_shape)
        check_choice("padding", padding, PADDINGS)
        check_positive_int("num_classes", num_classes)
        check_positive_int("planes", planes)
        check_positive_int("spp_planes", spp_planes)
        check_positive_int("head_planes", head_planes)
        check_bool("aux_head", aux_head)
        check_bool("align_corners", align_corners)
        stage_blocks = check_stage_blocks(stage_blocks)
        mean, std = input_statistics(input_shape[-1], mean, std)
        highres_planes = planes * 2

        # === Functional Model ===
        images = keras.Input(shape=input_shape, dtype="float32", name="images")
        # Constants, not weights: the normalisation has no (trainable) parameters.
        x = keras.layers.Normalization(
            mean=mean, variance=[value * value for value in std], name="normalize"
        )(images)

        # Stem, 1/4. The official stem convolutions keep PyTorch's default bias.
        x = conv_bn(x, planes, 3, 2, use_bias=True, padding=padding, name="stem_conv1")
        x = relu("stem_relu1")(x)
        x = conv_bn(x, planes, 3, 2, use_bias=True, padding=padding, name="stem_conv2")
        x = relu("stem_relu2")(x)

        # Shared trunk: layer1 at 1/4, layer2 at 1/8.
        x = basic_stage(x, planes, 1, "layer1", stage_blocks[0])
        x = basic_stage(relu("layer1_relu")(x), planes * 2, 2, "layer2", stage_blocks[1], padding)
        layer2_relu = relu("layer2_relu")(x)

        # Stage 3: low branch to 1/16, high branch stays at 1/8, then fusion.
        low = basic_stage(layer2_relu, planes * 4, 2, "layer3", stage_blocks[2], padding)
        high = basic_stage(layer2_relu, highres_planes, 1, "layer3_high", stage_blocks[2])
        down = relu("down3_relu")(high)
        down = conv_bn(down, planes * 4, 3, 2, padding=padding, name="down3")
        compressed = conv_bn(relu("compression3_relu")(low), highres_planes, 1, name="compression3")
        compressed = ResizeToMatch(name="compression3_resize")(compressed, high)
        low = keras.layers.Add(name="fusion3_low")([low, down])
        high = keras.layers.Add(name="fusion3_high")([high, compressed])
        aux_features = high

        # Stage 4: low branch to 1/32, high branch at 1/8, then fusion.
        low_stage4 = basic_stage(
            relu("layer4_relu")(low), planes * 8, 2, "layer4", stage_blocks[3], padding
        )
        high = relu("layer4_high_relu")(high)
        high = basic_stage(high, highres_planes, 1, "layer4_high", stage_blocks[3])
        down = conv_bn(relu("down4_relu")(high), planes * 4, 3, 2, padding=padding, name="down4_1")
        down = relu("down4_1_relu")(down)
        down = conv_bn(down, planes * 8, 3, 2, padding=padding, name="down4_2")
        compressed = relu("compression4_relu")(low_stage4)
        compressed = conv_bn(compressed, highres_planes, 1, name="compression4")
        compressed = ResizeToMatch(name="compression4_resize")(compressed, high)
        low = keras.layers.Add(name="fusion4_low")([low_stage4, down])
        high = keras.layers.Add(name="fusion4_high")([high, compressed])

        # Stage 5: one bottleneck per branch (low branch to 1/64), DAPPM, merge.
        high = bottleneck(relu("layer5_high_relu")(high), highres_planes, 1, "layer5_high")
        low = bottleneck(relu("layer5_relu")(low), planes * 8, 2, "layer5", padding=padding)
        context = dappm(low, spp_planes, planes * 4, name="spp", padding=padding)
        context = ResizeToMatch(name="spp_resize")(context, high)
        x = keras.layers.Add(name="context_add")([high, context])

        # Heads at 1/8, upsampled to the input size in float32.
        x = segment_head(x, head_planes, num_classes, name="head")
        logits = ResizeToMatch(dtype="float32", align_corners=align_corners, name="logits")(
            x, images
        )
        outputs = logits
        if aux_head:
            aux = segment_head(aux_features, head_planes, num_classes, name="aux_head")
            aux_logits = ResizeToMatch(
                dtype="float32", align_corners=align_corners, name="aux_logits"
            )(aux, images)
            outputs = [logits, aux_logits]

        super().__init__(inputs=images, outputs=outputs, **kwargs)

        self.keep_config(locals())


def ddrnet23_slim(num_classes, input_shape=(None, None, 3), aux_head=False, **options):
    """DDRNet-23-slim: 32 base channels, 5.7M parameters, the real-time model.

    `DualResNet(BasicBlock, [2, 2, 2, 2], planes=32, spp_planes=128, head_planes=64)`
    of the official code; 5,695,987 trainable parameters with 19 classes
    (5,734,342 with the auxiliary head) and 10.65 GFLOPs at 480x640.
    """
    return _build_ddrnet(
        "ddrnet23_slim", num_classes, input_shape, aux_head, options, planes=32, head_planes=64
    )


def ddrnet23(num_classes, input_shape=(None, None, 3), aux_head=False, **options):
    """DDRNet-23: 64 base channels, 20.1M parameters, the accurate model.

    `DualResNet(BasicBlock, [2, 2, 2, 2], planes=64, spp_planes=128, head_planes=128)`
    of the official code; 20,148,947 trainable parameters with 19 classes.
    """
    return _build_ddrnet(
        "ddrnet23", num_classes, input_shape, aux_head, options, planes=64, head_planes=128
    )


def ddrnet_lite(num_classes, input_shape=(None, None, 3), aux_head=False, **options):
    """DDRNet-lite: DDRNet-23-slim narrowed to 24 base channels and made shallower.

    Our design for CPUs, faster than Ultralytics YOLO26n-sem there: the layout of
    DDRNet-23-slim (dual-resolution branches, two bilateral fusions, DAPPM) with 24
    instead of 32 base channels (48 on the high-resolution branch) and one basic block
    instead of two in layer1, layer3 and layer4 (`stage_blocks=(1, 2, 1, 1)`): 2.6M
    trainable parameters with 19 classes and about half the latency of DDRNet-23-slim
    (see `models/README.md`). There are no pretrained weights for it: train from
    random weights (`recipes/camvid_ddrnet_lite.json`).
    """
    return _build_ddrnet(
        "ddrnet_lite",
        num_classes,
        input_shape,
        aux_head,
        options,
        planes=24,
        head_planes=64,
        stage_blocks=(1, 2, 1, 1),
    )


def check_stage_blocks(stage_blocks):
    """`stage_blocks` as a tuple of four positive ints, or `ValueError`."""
    valid = isinstance(stage_blocks, (tuple, list)) and len(stage_blocks) == 4
    valid = valid and all(
        isinstance(blocks, int) and not isinstance(blocks, bool) and blocks >= 1
        for blocks in stage_blocks
    )
    if not valid:
        raise ValueError(
            "`stage_blocks` must be four positive ints (layer1..layer4). "
            f"Received: stage_blocks={stage_blocks!r}"
        )
    return tuple(stage_blocks)


BUILDER_OPTIONS = ("mean", "std", "padding", "align_corners", "name")


def _build_ddrnet(
    variant, num_classes, input_shape, aux_head, options, planes, head_planes, stage_blocks=None
):
    check_options(variant, options, BUILDER_OPTIONS)
    # Keras padding by default: the int8 exports and the measured recipes were made with
    # it; `padding="symmetric"` is the official arithmetic the authors' weights need.
    options = {"name": variant, "padding": "same", **options}
    return DDRNet(
        num_classes=num_classes,
        input_shape=input_shape,
        planes=planes,
        spp_planes=128,
        head_planes=head_planes,
        aux_head=aux_head,
        stage_blocks=stage_blocks or (2, 2, 2, 2),
        **options,
    )
