"""Semantic FPN: the semantic segmentation branch of Panoptic FPN on a pyramid encoder.

Paper: Kirillov, Girshick, He and Dollar, "Panoptic Feature Pyramid Networks",
CVPR 2019, https://arxiv.org/abs/1901.02446 (section 3, figure 3). Reference
implementation: MMSegmentation `FPN` neck + `FPNHead`.

A Feature Pyramid Network (Lin et al. 2017, https://arxiv.org/abs/1612.03144)
turns the encoder's `P2..P5` into 256-channel maps: 1x1 lateral convolutions, a
top-down pathway that upsamples each coarser map and adds it to the finer one,
and a 3x3 output convolution per level. The semantic head then brings every
level to stride 4 with stages of (3x3 convolution 128 + BatchNorm + ReLU + 2x
bilinear upsampling) - three for P5, two for P4, one for P3, a convolution
without upsampling for P2 - sums the four maps, and predicts logits at stride 4
that are bilinearly upsampled to the input size.

Two details differ from the paper, as in MMSegmentation: BatchNorm instead of
GroupNorm, and dropout 0.1 before the classifier. Upsampling is bilinear to the
exact size of the finer level (so any input size works), where the paper uses
nearest-neighbour in the top-down pathway.
"""

import keras

from models import arguments
from models.blocks import classifier, conv_bn_relu, encode, fcn_head, upsample_logits
from models.encoders import check_encoder_model
from models.layers import ResizeToMatch
from models.segmenter import EncoderSegmenter

LEVELS = ("P2", "P3", "P4", "P5")


@keras.saving.register_keras_serializable(package="semseg")
class SemanticFPN(EncoderSegmenter):
    """Semantic FPN on a `keras.applications` pyramid encoder.

    Paper: https://arxiv.org/abs/1901.02446.

    Args:
        num_classes: int >= 1, number of classes (1 for binary segmentation).
        input_shape: `(height, width, channels)`; height and width `None` (any
            size, the default) or positive ints, channels an int >= 1.
        encoder: a key of `models.encoders.ENCODERS`, e.g. `"resnet50"`.
        encoder_weights: `None` or `"imagenet"`; a model rebuilt from its config
            never downloads (its weights come from the saved file).
        output_stride: 32 (the plain pyramid, default), 16 or 8.
        fpn_filters: int, channels of the FPN maps.
        head_filters: int, channels of the semantic head's convolutions.
        dropout: float in [0, 1), dropout before the classifiers.
        aux_head: bool, add an FCN auxiliary head on `P4` and return
            `[logits, aux_logits]`.
        aux_filters: int, channels of the auxiliary head.
        mean: `None` (the encoder's ImageNet statistics), a number or one per channel.
        std: `None`, a positive number or one per channel.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Call arguments:
        images: float32 `(B, H, W, C)` pixel values in 0..255.

    Returns:
        Logits, float32 `(B, H, W, num_classes)` from the layer `logits`; with
        `aux_head=True`, `[logits, aux_logits]`.

    Example:
        >>> model = SemanticFPN(num_classes=19, encoder="resnet50")
        >>> model(np.zeros((1, 64, 96, 3), "float32")).shape
        TensorShape([1, 64, 96, 19])
    """

    def __init__(
        self,
        num_classes,
        input_shape=(None, None, 3),
        encoder="resnet50",
        encoder_weights=None,
        output_stride=32,
        fpn_filters=256,
        head_filters=128,
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
        arguments.check_positive_int("fpn_filters", fpn_filters)
        arguments.check_positive_int("head_filters", head_filters)
        arguments.check_positive_int("aux_filters", aux_filters)
        dropout = arguments.check_dropout(dropout)
        arguments.check_bool("aux_head", aux_head)

        # === Functional Model ===
        images = keras.Input(shape=input_shape, dtype="float32", name="images")
        features, mean, std = encode(images, encoder, encoder_weights, output_stride, mean, std)

        # FPN: lateral 1x1 convolutions and the top-down pathway.
        laterals = {
            level: keras.layers.Conv2D(fpn_filters, 1, name=f"fpn_lateral_{level}")(features[level])
            for level in LEVELS
        }
        merged = {"P5": laterals["P5"]}
        for coarse, fine in zip(LEVELS[:0:-1], LEVELS[-2::-1]):
            upsampled = ResizeToMatch(name=f"fpn_upsample_{coarse}")(merged[coarse], laterals[fine])
            merged[fine] = keras.layers.Add(name=f"fpn_add_{fine}")([laterals[fine], upsampled])
        pyramid = {
            level: keras.layers.Conv2D(fpn_filters, 3, padding="same", name=f"fpn_output_{level}")(
                merged[level]
            )
            for level in LEVELS
        }

        # Semantic head: every level to stride 4, then sum.
        branches = []
        for index, level in enumerate(LEVELS):
            x = pyramid[level]
            for stage in range(max(index, 1)):
                x = conv_bn_relu(x, head_filters, 3, name=f"head_{level}_{stage + 1}")
                if index > 0:
                    target = pyramid[LEVELS[index - stage - 1]]
                    x = ResizeToMatch(name=f"head_{level}_{stage + 1}_upsample")(x, target)
            branches.append(x)
        x = keras.layers.Add(name="head_sum")(branches)
        x = classifier(x, num_classes, dropout, name="classifier")
        logits = upsample_logits(x, images, name="logits")
        outputs = logits
        if aux_head:
            aux = fcn_head(features["P4"], aux_filters, num_classes, dropout, name="aux_head")
            outputs = [logits, upsample_logits(aux, images, name="aux_logits")]

        super().__init__(inputs=images, outputs=outputs, **kwargs)

        self.keep_config(locals())


BUILDER_OPTIONS = ("weights", "output_stride", "mean", "std", "name")


def _build(model_name, encoder, num_classes, input_shape, aux_head, options):
    arguments.check_options(model_name, options, BUILDER_OPTIONS)
    options = {"name": model_name, **options}
    weights = options.pop("weights", None)
    return SemanticFPN(
        num_classes=num_classes,
        input_shape=input_shape,
        encoder=encoder,
        encoder_weights=weights,
        aux_head=aux_head,
        **options,
    )


def fpn_resnet50(num_classes, input_shape=(None, None, 3), aux_head=False, **options):
    """Semantic FPN on ResNet-50 (`keras.applications.ResNet50`).

    Paper: https://arxiv.org/abs/1901.02446.

    Args:
        num_classes: int >= 1, number of classes (1 for binary segmentation).
        input_shape: `(height, width, channels)`, height/width `None` for any size.
        aux_head: bool, add the FCN auxiliary head and return `[logits, aux_logits]`.
        **options: `weights` (`None` or `"imagenet"`), `output_stride` (32, 16
            or 8), `mean`, `std` and `name` (default `"fpn_resnet50"`).

    Returns:
        `SemanticFPN` mapping float32 `(B, H, W, C)` pixels in 0..255 to float32
        logits `(B, H, W, num_classes)`.
    """
    return _build("fpn_resnet50", "resnet50", num_classes, input_shape, aux_head, options)


def fpn_resnet101(num_classes, input_shape=(None, None, 3), aux_head=False, **options):
    """Semantic FPN on ResNet-101 (`keras.applications.ResNet101`).

    Paper: https://arxiv.org/abs/1901.02446. Arguments as `fpn_resnet50`
    (default name `"fpn_resnet101"`).
    """
    return _build("fpn_resnet101", "resnet101", num_classes, input_shape, aux_head, options)


def fpn_effb0(num_classes, input_shape=(None, None, 3), aux_head=False, **options):
    """Semantic FPN on EfficientNet-B0 (`keras.applications.EfficientNetB0`).

    Paper: https://arxiv.org/abs/1901.02446. Arguments as `fpn_resnet50`
    (default name `"fpn_effb0"`).
    """
    return _build("fpn_effb0", "efficientnetb0", num_classes, input_shape, aux_head, options)
