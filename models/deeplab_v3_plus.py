"""DeepLabV3+: atrous spatial pyramid pooling and a light decoder on a pyramid encoder.

Paper: Chen, Zhu, Papandreou, Schroff and Adam, "Encoder-Decoder with Atrous
Separable Convolution for Semantic Image Segmentation", ECCV 2018,
https://arxiv.org/abs/1802.02611. Official code:
https://github.com/tensorflow/models/tree/master/research/deeplab.

The encoder (EfficientNet, MobileNetV3 or ResNet from `keras.applications`, see
`models.encoders`) runs at output stride 16 (or 8) by dilating its last stages.
Atrous Spatial Pyramid Pooling (ASPP) on the coarsest features `P5` gathers
context with a 1x1 convolution, three 3x3 atrous convolutions (rates 6, 12, 18
at output stride 16, doubled at 8) and image-level pooling; a 1x1 projection
merges them. The decoder upsamples the result to stride 4, concatenates the
stride-4 features `P2` reduced to 48 channels, refines with two 3x3
convolutions and predicts the logits, bilinearly upsampled to the input size.

As in the paper (section 3.3) and its official code (`aspp_with_separable_conv`,
`decoder_use_separable_conv`), the 3x3 convolutions of ASPP and decoder are
depthwise-separable (depthwise + BN + ReLU, pointwise + BN + ReLU): with 256
channels at stride 4, regular convolutions cost 2 (ResNet-50) to 7 (MobileNetV3)
times more FLOPs at 480x640 (`separable=False` builds them, as keras-io and
keras-hub do). The light variant (`effdeeplabv3plus_lite`) also narrows the
head: 128 ASPP / 32 low-level / 128 decoder channels.
"""

import keras

from models import arguments
from models.blocks import classifier, conv_bn_relu, encode, fcn_head, upsample_logits
from models.encoders import check_encoder_model
from models.layers import ResizeToMatch
from models.segmenter import EncoderSegmenter

# ASPP rates of the paper at output stride 16; they scale with 16 / output_stride.
ASPP_RATES_AT_STRIDE_16 = (6, 12, 18)


@keras.saving.register_keras_serializable(package="semseg")
class DeepLabV3Plus(EncoderSegmenter):
    """DeepLabV3+ on a `keras.applications` pyramid encoder.

    Paper: https://arxiv.org/abs/1802.02611.

    Args:
        num_classes: int >= 1, number of classes (channels of the logits; 1 for
            binary segmentation).
        input_shape: `(height, width, channels)`; height and width `None` (any
            size, the default) or positive ints, channels an int >= 1.
        encoder: a key of `models.encoders.ENCODERS`, e.g. `"efficientnetb0"`.
        encoder_weights: `None` (random initialisation), `"imagenet"` or the
            path of the encoder's keras.applications `.h5` file. A model
            rebuilt from its config (e.g. loaded from a `.keras` file) never
            downloads: its weights come from the file.
        output_stride: 8 or 16 (or 32), stride of the encoder's coarsest features.
        aspp_filters: int, channels of the ASPP branches and projection.
        aspp_rates: three atrous rates, or `None` for `(6, 12, 18) * 16 / output_stride`.
        low_level_filters: int, channels the stride-4 features are reduced to.
        decoder_filters: int, channels of the decoder's 3x3 convolutions.
        separable: bool, depthwise-separable 3x3 convolutions in ASPP and decoder
            (the paper's choice, default) or regular ones.
        dropout: float in [0, 1), dropout after the ASPP projection and before
            the classifiers.
        aux_head: bool; when True the model has a second output, the logits of an
            FCN head on the stride-16 features `P4` (MMSegmentation's auxiliary
            head) for deep supervision.
        aux_filters: int, channels of the auxiliary head.
        mean: `None` (the statistics the encoder's ImageNet weights expect, see
            `models.encoders.input_statistics`), a number or one per channel.
        std: `None`, a positive number or one per channel.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Call arguments:
        images: float32 `(B, H, W, C)` pixel values in 0..255.

    Returns:
        Logits, float32 `(B, H, W, num_classes)` from the layer `logits`; with
        `aux_head=True`, `[logits, aux_logits]` of the same shape.

    Example:
        >>> model = DeepLabV3Plus(num_classes=19, encoder="mobilenetv3small")
        >>> model(np.zeros((1, 64, 96, 3), "float32")).shape
        TensorShape([1, 64, 96, 19])
    """

    def __init__(
        self,
        num_classes,
        input_shape=(None, None, 3),
        encoder="efficientnetb0",
        encoder_weights=None,
        output_stride=16,
        aspp_filters=256,
        aspp_rates=None,
        low_level_filters=48,
        decoder_filters=256,
        separable=True,
        dropout=0.1,
        aux_head=False,
        aux_filters=256,
        mean=None,
        std=None,
        **kwargs,
    ):
        input_shape = check_encoder_model(
            input_shape, num_classes, encoder, encoder_weights, output_stride
        )
        arguments.check_positive_int("aspp_filters", aspp_filters)
        arguments.check_positive_int("low_level_filters", low_level_filters)
        arguments.check_positive_int("decoder_filters", decoder_filters)
        arguments.check_positive_int("aux_filters", aux_filters)
        if aspp_rates is None:
            aspp_rates = [rate * 16 // output_stride for rate in ASPP_RATES_AT_STRIDE_16]
        if not isinstance(aspp_rates, (tuple, list)) or len(aspp_rates) != 3:
            raise ValueError(
                f"`aspp_rates` must be three positive ints. Received: aspp_rates={aspp_rates!r}"
            )
        for rate in aspp_rates:
            arguments.check_positive_int("aspp_rates", rate)
        aspp_rates = [int(rate) for rate in aspp_rates]
        arguments.check_bool("separable", separable)
        arguments.check_bool("aux_head", aux_head)
        dropout = arguments.check_dropout(dropout)

        # === Functional Model ===
        images = keras.Input(shape=input_shape, dtype="float32", name="images")
        features, mean, std = encode(images, encoder, encoder_weights, output_stride, mean, std)

        x = _aspp(features["P5"], aspp_filters, aspp_rates, separable, dropout, name="aspp")
        low_level = conv_bn_relu(features["P2"], low_level_filters, 1, name="decoder_low_level")
        x = ResizeToMatch(name="decoder_upsample")(x, low_level)
        x = keras.layers.Concatenate(name="decoder_concat")([x, low_level])
        x = conv_bn_relu(x, decoder_filters, 3, separable=separable, name="decoder_1")
        x = conv_bn_relu(x, decoder_filters, 3, separable=separable, name="decoder_2")
        x = classifier(x, num_classes, dropout, name="classifier")
        logits = upsample_logits(x, images, name="logits")
        outputs = logits
        if aux_head:
            aux = fcn_head(features["P4"], aux_filters, num_classes, dropout, name="aux_head")
            outputs = [logits, upsample_logits(aux, images, name="aux_logits")]

        super().__init__(inputs=images, outputs=outputs, **kwargs)

        self.keep_config(locals())


def _aspp(x, filters, rates, separable, dropout, name):
    """Atrous Spatial Pyramid Pooling (DeepLabV3, https://arxiv.org/abs/1706.05587).

    Args:
        x: `(B, h, w, C)` coarsest encoder features.
        filters: int, channels of every branch and of the output.
        rates: three atrous rates of the 3x3 branches.
        separable: bool, depthwise-separable 3x3 branches.
        dropout: float, dropout after the projection.
        name: str, prefix of the layer names.

    Returns:
        `(B, h, w, filters)` features.
    """
    branches = [conv_bn_relu(x, filters, 1, name=f"{name}_1x1")]
    for index, rate in enumerate(rates, start=1):
        branches.append(
            conv_bn_relu(
                x, filters, 3, dilation_rate=rate, separable=separable, name=f"{name}_rate{index}"
            )
        )
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    pooled = conv_bn_relu(pooled, filters, 1, name=f"{name}_pool_1x1")
    branches.append(ResizeToMatch(name=f"{name}_pool_resize")(pooled, x))
    x = keras.layers.Concatenate(name=f"{name}_concat")(branches)
    x = conv_bn_relu(x, filters, 1, name=f"{name}_projection")
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


BUILDER_OPTIONS = ("weights", "output_stride", "mean", "std", "name")


def _build(model_name, num_classes, input_shape, aux_head, options, encoder, **head):
    arguments.check_options(model_name, options, BUILDER_OPTIONS)
    options = {"name": model_name, **options}
    weights = options.pop("weights", None)
    return DeepLabV3Plus(
        num_classes=num_classes,
        input_shape=input_shape,
        encoder=encoder,
        encoder_weights=weights,
        aux_head=aux_head,
        **head,
        **options,
    )


_BUILDER_DOC = """DeepLabV3+ on {encoder_title}{variant}.

    Paper: https://arxiv.org/abs/1802.02611. Encoder: `keras.applications.{application}`.

    Args:
        num_classes: int >= 1, number of classes (1 for binary segmentation).
        input_shape: `(height, width, channels)`, height/width `None` for any size.
        aux_head: bool, add the FCN auxiliary head on `P4` and return
            `[logits, aux_logits]`.
        **options: `weights` (`None` or `"imagenet"`), `output_stride` (16, or
            8), `mean`, `std` (see `DeepLabV3Plus`) and `name` (default
            `"{model_name}"`).

    Returns:
        `DeepLabV3Plus` mapping float32 `(B, H, W, C)` pixels in 0..255 to float32
        logits `(B, H, W, num_classes)`.
    """


def _builder(model_name, encoder, encoder_title, application, variant="", **head):
    def builder(num_classes, input_shape=(None, None, 3), aux_head=False, **options):
        return _build(model_name, num_classes, input_shape, aux_head, options, encoder, **head)

    builder.__name__ = builder.__qualname__ = model_name
    builder.__doc__ = _BUILDER_DOC.format(
        encoder_title=encoder_title,
        variant=variant,
        application=application,
        model_name=model_name,
    )
    return builder


# Model name: (encoder, its title, its `keras.applications` class).
EFFICIENTNET_MODELS = {
    f"effdeeplabv3plus_b{size}": (
        f"efficientnetb{size}",
        f"EfficientNet-B{size}",
        f"EfficientNetB{size}",
    )
    for size in range(8)
}
OTHER_ENCODER_MODELS = {
    "mnv3deeplabv3plus_large": ("mobilenetv3large", "MobileNetV3-Large", "MobileNetV3Large"),
    "mnv3deeplabv3plus_small": ("mobilenetv3small", "MobileNetV3-Small", "MobileNetV3Small"),
    "deeplabv3plus_resnet50": ("resnet50", "ResNet-50", "ResNet50"),
    "deeplabv3plus_resnet101": ("resnet101", "ResNet-101", "ResNet101"),
}
# The zoo's DeepLabV3+ models by name, in `models.MODELS`' order.
BUILDERS = {
    **{name: _builder(name, *encoder) for name, encoder in EFFICIENTNET_MODELS.items()},
    "effdeeplabv3plus_lite": _builder(
        "effdeeplabv3plus_lite",
        "efficientnetb0",
        "EfficientNet-B0",
        "EfficientNetB0",
        variant=(
            ", light variant: depthwise-separable ASPP and decoder at reduced width\n"
            "    (128 ASPP, 32 low-level and 128 decoder channels, 64-channel auxiliary head)"
        ),
        aspp_filters=128,
        low_level_filters=32,
        decoder_filters=128,
        aux_filters=64,
    ),
    **{name: _builder(name, *encoder) for name, encoder in OTHER_ENCODER_MODELS.items()},
}
