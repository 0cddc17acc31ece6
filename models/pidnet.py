"""PIDNet: a real-time segmentation network inspired by PID controllers.

Paper: Xu, Xiong and Bhattacharyya, "PIDNet: A Real-time Semantic Segmentation
Network Inspired by PID Controllers", CVPR 2023, https://arxiv.org/abs/2206.02066.
Official code: https://github.com/XuJiacong/PIDNet (`models/pidnet.py`,
`models/model_utils.py`), MIT licence.

Three branches share a ResNet trunk to 1/8 of the input:

* **I** (integral, context): the trunk goes on to 1/64 and ends in a pyramid
  pooling module (PAPPM for -S/-M, DAPPM for -L);
* **P** (proportional, detail): stays at 1/8; after stages 3 and 4 it takes the
  I branch's features through pixel-attention-guided fusion (`PagFM`,
  `models.layers.PixelAttentionFusion`);
* **D** (derivative, boundaries): stays at 1/8 with fewer channels and adds the
  I branch's features after stages 3 and 4.

The boundary-attention-guided fusion (`Bag`, or `Light_Bag` for -S/-M) mixes the
three: where the D branch sees a boundary, detail (P) dominates; elsewhere
context (I). The head's 1/8 logits are bilinearly upsampled to the input size.

With `aux_head=True` the model also returns the two training heads: the P
branch's semantic logits after stage 3 (`aux_logits`, loss weight 0.4) and the
D branch's boundary logit after stage 4 (`boundary_logits`, one channel), both
upsampled to the input size, as the official `augment=True` model does.

Layers, widths, ReLU placement (including the in-place ReLUs the heads' inputs
receive in the official forward pass), padding and parameters are the
official ones: 7,625,715 parameters for PIDNet-S with 19 classes, 7,720,935 with
the training heads; 28,763,111 (M) and 37,314,311 (L) with them.
"""

import keras

from models.arguments import (
    check_bool,
    check_choice,
    check_input_shape,
    check_options,
    check_positive_int,
)
from models.ddrnet import input_statistics
from models.layers import PixelAttentionFusion, ResizeToMatch
from models.residual_blocks import (
    PADDINGS,
    basic_block,
    basic_stage,
    bn_relu_conv,
    bottleneck,
    bottleneck_stage,
    conv_bn,
    dappm,
    pappm,
    relu,
    segment_head,
)
from models.segmenter import Segmenter


@keras.saving.register_keras_serializable(package="semseg")
class PIDNet(Segmenter):
    """PIDNet (S, M, L) for semantic segmentation.

    Paper: https://arxiv.org/abs/2206.02066. Use the builders `pidnet_s`,
    `pidnet_m` and `pidnet_l` for the published configurations.

    Args:
        num_classes: int >= 1, number of classes (channels of the logits).
        input_shape: `(height, width, channels)`; height and width `None` for any
            size (the default) or positive ints, channels an int >= 1.
        m: int, basic blocks of stages 1-2 and of the P branch (2 for S/M, 3 for L).
        n: int, basic blocks of stages 3-4 of the I branch (3 for S/M, 4 for L).
        planes: int, width of the first stage (32 for S, 64 for M/L).
        ppm_planes: int, width of each pyramid-pooling branch (96; 112 for L).
        head_planes: int, hidden width of the semantic heads (128; 256 for L).
        aux_head: bool; with True the model returns `[logits, aux_logits,
            boundary_logits]` (the training heads of the P and D branches).
        mean: float or one float per channel; `None` means the ImageNet mean for
            3 channels (RGB, 0..255) and 127.5 otherwise.
        std: float or one float per channel (> 0); `None` means the ImageNet std
            for 3 channels and 64.0 otherwise.
        padding: `"symmetric"` (the official padding, default) or `"same"`, see
            `models/residual_blocks.py`.
        align_corners: bool, upsample the logits to the input size with
            `align_corners=True` (MMSegmentation's PIDNet head and the authors' PIDNet
            evaluation) instead of half-pixel centres; the resizes inside the network
            keep half-pixel centres, as both official codes do.
        **kwargs: passed to `keras.Model` (`name`, `trainable`).

    Call arguments:
        images: float32 tensor `(B, H, W, C)` of pixel values in 0..255.

    Returns:
        Logits, float32 `(B, H, W, num_classes)` (layer `logits`); with
        `aux_head=True` the list `[logits, aux_logits, boundary_logits]`, the last
        `(B, H, W, 1)`.

    Example:
        >>> model = pidnet_s(num_classes=19)
        >>> model(np.zeros((1, 64, 96, 3), "float32")).shape
        TensorShape([1, 64, 96, 19])
    """

    def __init__(
        self,
        num_classes,
        input_shape=(None, None, 3),
        m=2,
        n=3,
        planes=32,
        ppm_planes=96,
        head_planes=128,
        aux_head=False,
        mean=None,
        std=None,
        padding="symmetric",
        align_corners=False,
        **kwargs,
    ):
        input_shape = check_input_shape(input_shape)
        for argument, value in (
            ("num_classes", num_classes),
            ("m", m),
            ("n", n),
            ("planes", planes),
            ("ppm_planes", ppm_planes),
            ("head_planes", head_planes),
        ):
            check_positive_int(argument, value)
        check_bool("aux_head", aux_head)
        check_bool("align_corners", align_corners)
        check_choice("padding", padding, PADDINGS)
        mean, std = input_statistics(input_shape[-1], mean, std)
        light = m == 2  # -S and -M: PAPPM and Light_Bag; -L: DAPPM and Bag

        # === Functional Model ===
        images = keras.Input(shape=input_shape, dtype="float32", name="images")
        x = keras.layers.Normalization(
            mean=mean, variance=[value * value for value in std], name="normalize"
        )(images)

        # Shared trunk to 1/8.
        x = conv_bn(x, planes, 3, 2, use_bias=True, padding=padding, name="stem_conv1")
        x = relu("stem_relu1")(x)
        x = conv_bn(x, planes, 3, 2, use_bias=True, padding=padding, name="stem_conv2")
        x = relu("stem_relu2")(x)
        x = basic_stage(x, planes, 1, "layer1", num_blocks=m)
        x = relu("layer1_relu")(x)
        x = basic_stage(x, planes * 2, 2, "layer2", num_blocks=m, padding=padding)
        x = relu("layer2_relu")(x)

        # Stage 3: P and D branches at 1/8, I branch to 1/16.
        detail = basic_stage(x, planes * 2, 1, "layer3_p", num_blocks=m)
        boundary = basic_block(
            x,
            planes if light else planes * 2,
            1,
            final_relu=False,
            padding=padding,
            name="layer3_d",
        )
        x = basic_stage(x, planes * 4, 2, "layer3", num_blocks=n, padding=padding)
        x = relu("layer3_relu")(x)
        detail = _pixel_attention_fusion(
            detail, conv_bn(x, planes * 2, 1, name="compression3"), planes, "pag3"
        )
        boundary = _add_context(boundary, x, planes if light else planes * 2, "diff3")
        # The official forward applies its next ReLUs in place, so the heads see them too.
        detail = relu("layer4_p_relu")(detail)
        aux_features = detail

        # Stage 4: I branch to 1/32.
        x = basic_stage(x, planes * 8, 2, "layer4", num_blocks=n, padding=padding)
        x = relu("layer4_relu")(x)
        detail = basic_stage(detail, planes * 2, 1, "layer4_p", num_blocks=m)
        boundary = relu("layer4_d_relu")(boundary)
        if light:
            boundary = bottleneck(boundary, planes, 1, "layer4_d")
        else:
            boundary = basic_block(boundary, planes * 2, 1, False, padding, "layer4_d")
        detail = _pixel_attention_fusion(
            detail, conv_bn(x, planes * 2, 1, name="compression4"), planes, "pag4"
        )
        boundary = _add_context(boundary, x, planes * 2, "diff4")
        boundary = relu("layer5_d_relu")(boundary)
        boundary_features = boundary

        # Stage 5: one bottleneck on P and D, two on I (to 1/64), pyramid pooling.
        detail = bottleneck(relu("layer5_p_relu")(detail), planes * 2, 1, "layer5_p")
        boundary = bottleneck(boundary, planes * 2, 1, "layer5_d")
        x = bottleneck_stage(x, planes * 8, 2, "layer5", num_blocks=2, padding=padding)
        pyramid = pappm if light else dappm
        x = pyramid(x, ppm_planes, planes * 4, name="spp", padding=padding)
        x = ResizeToMatch(name="spp_resize")(x, boundary)

        # Boundary-attention-guided fusion, then the head at 1/8.
        x = _boundary_attention_fusion(detail, x, boundary, planes * 4, light, "dfm")
        x = segment_head(x, head_planes, num_classes, name="head")
        logits = ResizeToMatch(dtype="float32", align_corners=align_corners, name="logits")(
            x, images
        )
        outputs = logits
        if aux_head:
            aux = segment_head(aux_features, head_planes, num_classes, name="p_head")
            aux_logits = ResizeToMatch(
                dtype="float32", align_corners=align_corners, name="aux_logits"
            )(aux, images)
            edges = segment_head(boundary_features, planes, 1, name="d_head")
            boundary_logits = ResizeToMatch(
                dtype="float32", align_corners=align_corners, name="boundary_logits"
            )(edges, images)
            outputs = [logits, aux_logits, boundary_logits]

        super().__init__(inputs=images, outputs=outputs, **kwargs)

        self.keep_config(locals())


def _pixel_attention_fusion(detail, context, mid_planes, name):
    """`PagFM`: fuses low-resolution `context` into the 1/8 `detail` features."""
    detail_key = conv_bn(detail, mid_planes, 1, name=f"{name}_f_x")
    context_query = conv_bn(context, mid_planes, 1, name=f"{name}_f_y")
    context_query = ResizeToMatch(name=f"{name}_query_resize")(context_query, detail)
    context = ResizeToMatch(name=f"{name}_context_resize")(context, detail)
    return PixelAttentionFusion(name=name)([detail, detail_key, context_query, context])


def _add_context(boundary, context, planes, name):
    """The D branch's `x_d + interpolate(diff(x))`: a 3x3 conv + BN of the I branch, resized."""
    context = conv_bn(context, planes, 3, name=name)
    context = ResizeToMatch(name=f"{name}_resize")(context, boundary)
    return keras.layers.Add(name=f"{name}_add")([boundary, context])


def _boundary_attention_fusion(detail, context, boundary, planes, light, name):
    """`Light_Bag` (`light`) or `Bag`: boundary attention `sigmoid(d)` mixes P and I.

    Light_Bag: `conv_p((1 - a) * i + p) + conv_i(i + a * p)`; Bag:
    `conv(a * p + (1 - a) * i)` (BN-ReLU-3x3 conv).
    """
    attention = keras.layers.Activation("sigmoid", name=f"{name}_attention")(boundary)
    attended_context = keras.layers.Multiply(name=f"{name}_attended_i")([attention, context])
    attended_detail = keras.layers.Multiply(name=f"{name}_attended_p")([attention, detail])
    context_rest = keras.layers.Subtract(name=f"{name}_i_rest")([context, attended_context])
    if not light:
        mixed = keras.layers.Add(name=f"{name}_mix")([attended_detail, context_rest])
        return bn_relu_conv(mixed, planes, 3, name=name)
    detail_mix = keras.layers.Add(name=f"{name}_p_mix")([context_rest, detail])
    context_mix = keras.layers.Add(name=f"{name}_i_mix")([context, attended_detail])
    detail_mix = conv_bn(detail_mix, planes, 1, name=f"{name}_conv_p")
    context_mix = conv_bn(context_mix, planes, 1, name=f"{name}_conv_i")
    return keras.layers.Add(name=f"{name}_add")([detail_mix, context_mix])


VARIANTS = {
    "pidnet_s": {"m": 2, "n": 3, "planes": 32, "ppm_planes": 96, "head_planes": 128},
    "pidnet_m": {"m": 2, "n": 3, "planes": 64, "ppm_planes": 96, "head_planes": 128},
    "pidnet_l": {"m": 3, "n": 4, "planes": 64, "ppm_planes": 112, "head_planes": 256},
}
BUILDER_OPTIONS = ("mean", "std", "padding", "align_corners", "name")


def _build_pidnet(variant, num_classes, input_shape, aux_head, options):
    check_options(variant, options, BUILDER_OPTIONS)
    options = {"name": variant, **options}
    return PIDNet(
        num_classes=num_classes,
        input_shape=input_shape,
        aux_head=aux_head,
        **VARIANTS[variant],
        **options,
    )


def pidnet_s(num_classes, input_shape=(None, None, 3), aux_head=False, **options):
    """PIDNet-S: 7.6M parameters; the authors report 78.8 Cityscapes val mIoU at 93 FPS.

    `PIDNet(m=2, n=3, planes=32, ppm_planes=96, head_planes=128)` of the official
    code: 7,625,715 parameters with 19 classes, 7,720,935 with `aux_head=True`.

    Args:
        num_classes: int >= 1.
        input_shape: `(height, width, channels)`, height/width `None` for any size.
        aux_head: bool, add the P and D training heads (see `PIDNet`).
        **options: `mean`, `std`, `padding`, `name`.
    """
    return _build_pidnet("pidnet_s", num_classes, input_shape, aux_head, options)


def pidnet_m(num_classes, input_shape=(None, None, 3), aux_head=False, **options):
    """PIDNet-M: `planes=64`; 28,763,111 parameters with the training heads (19 classes)."""
    return _build_pidnet("pidnet_m", num_classes, input_shape, aux_head, options)


def pidnet_l(num_classes, input_shape=(None, None, 3), aux_head=False, **options):
    """PIDNet-L: `m=3, n=4, planes=64`, DAPPM and Bag; 37,314,311 parameters with the heads."""
    return _build_pidnet("pidnet_l", num_classes, input_shape, aux_head, options)
