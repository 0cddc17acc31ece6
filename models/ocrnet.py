"""OCRNet: object-contextual representations on a dilated ResNet encoder.

Paper: Yuan, Chen and Wang, "Object-Contextual Representations for Semantic
Segmentation", ECCV 2020, https://arxiv.org/abs/1909.11065. Official code:
https://github.com/HRNet/HRNet-Semantic-Segmentation (branch HRNet-OCR);
reference with a dilated ResNet: MMSegmentation `OCRHead` (`ocrnet_r101-d8`).

1. *Soft object regions*: an FCN head on the stride-8 `P4` features predicts
   coarse class logits `(B, h, w, K)`. They are supervised by the auxiliary
   loss (weight 0.4 in the reference recipe), returned as `aux_logits` with
   `aux_head=True`.
2. *Object region representations*: the `P5` features, reduced to 512 channels
   by a 3x3 convolution, are averaged over each soft region (softmax of the
   region logits over all pixels): one 512-vector per class (`SpatialGather`).
3. *Object-contextual representations*: every pixel attends to the K region
   vectors (`ObjectAttention`, key/query 256 channels, scaled dot product,
   softmax over the regions), the result is projected back to 512 channels,
   concatenated with the pixel's features and fused by a 1x1 convolution.
4. A 1x1 classifier gives the logits at stride 8, bilinearly upsampled to the
   input size.

The encoder is ResNet-50 from `keras.applications` dilated to output stride 8
(see `models.encoders`).
"""

import keras
from keras import ops

from models import arguments
from models.blocks import classifier, conv_bn_relu, encode, fcn_head, upsample_logits
from models.encoders import check_encoder_model
from models.layers import ResizeToMatch
from models.segmenter import EncoderSegmenter


@keras.saving.register_keras_serializable(package="semseg")
class SpatialGather(keras.layers.Layer):
    """Object region representations: features averaged over each soft region.

    For each class k, `softmax` over all pixels of the region logits of k gives
    spatial weights; the representation of region k is the weighted sum of the
    pixel features.

    Call arguments:
        features: float `(B, h, w, C)` pixel features.
        region_logits: float `(B, h, w, K)` soft object region logits.

    Returns:
        `(B, K, 1, C)` region representations, shaped as a `K x 1` image so that
        1x1 convolutions and BatchNorm apply to them.
    """

    def call(self, features, region_logits):
        batch_size = ops.shape(features)[0]
        channels = features.shape[-1]
        num_regions = region_logits.shape[-1]
        features = ops.reshape(features, (batch_size, -1, channels))
        region_logits = ops.cast(region_logits, features.dtype)
        weights = ops.softmax(ops.reshape(region_logits, (batch_size, -1, num_regions)), axis=1)
        context = ops.matmul(ops.transpose(weights, (0, 2, 1)), features)
        return ops.expand_dims(context, axis=2)

    def compute_output_shape(self, features_shape, region_logits_shape):
        return (features_shape[0], region_logits_shape[-1], 1, features_shape[-1])


@keras.saving.register_keras_serializable(package="semseg")
class ObjectAttention(keras.layers.Layer):
    """Scaled dot-product attention of every pixel over the K object regions.

    Call arguments:
        query: float `(B, h, w, D)` transformed pixel features.
        key: float `(B, K, 1, D)` transformed region representations.
        value: float `(B, K, 1, D')` transformed region representations.

    Returns:
        `(B, h, w, D')`: for each pixel, the region values weighted by
        `softmax_k(query . key_k / sqrt(D))`.
    """

    def call(self, query, key, value):
        query_shape = ops.shape(query)
        batch_size = query_shape[0]
        key_channels = query.shape[-1]
        value_channels = value.shape[-1]
        flat_query = ops.reshape(query, (batch_size, -1, key_channels))
        key = ops.reshape(key, (batch_size, -1, key_channels))
        value = ops.reshape(value, (batch_size, -1, value_channels))
        similarity = ops.matmul(flat_query, ops.transpose(key, (0, 2, 1)))
        similarity = ops.softmax(similarity * (float(key_channels) ** -0.5), axis=-1)
        context = ops.matmul(similarity, value)
        return ops.reshape(context, (batch_size, query_shape[1], query_shape[2], value_channels))

    def compute_output_shape(self, query_shape, key_shape, value_shape):
        return (*query_shape[:3], value_shape[-1])


@keras.saving.register_keras_serializable(package="semseg")
class OCRNet(EncoderSegmenter):
    """OCRNet (object-contextual representations) on a dilated pyramid encoder.

    Paper: https://arxiv.org/abs/1909.11065.

    Args:
        num_classes: int >= 1, number of classes (1 for binary segmentation).
        input_shape: `(height, width, channels)`; height and width `None` (any
            size, the default) or positive ints, channels an int >= 1.
        encoder: a key of `models.encoders.ENCODERS` (default `"resnet50"`).
        encoder_weights: `None` or `"imagenet"`; a model rebuilt from its config
            never downloads (its weights come from the saved file).
        output_stride: 8 (default, as the paper's dilated ResNet), 16 or 32.
        ocr_filters: int, channels of the pixel and region representations (512).
        key_filters: int, channels of the attention's keys and queries (256).
        region_filters: int, channels of the soft object region head (256).
        dropout: float in [0, 1), dropout before the classifiers.
        aux_head: bool; when True the model also returns the soft object region
            logits, upsampled to the input size, as `aux_logits` (they are always
            computed: the OCR module needs them).
        mean: `None` (the encoder's ImageNet statistics), a number or one per channel.
        std: `None`, a positive number or one per channel.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Call arguments:
        images: float32 `(B, H, W, C)` pixel values in 0..255.

    Returns:
        Logits, float32 `(B, H, W, num_classes)` from the layer `logits`; with
        `aux_head=True`, `[logits, aux_logits]`.

    Example:
        >>> model = OCRNet(num_classes=19, aux_head=True)
        >>> [output.shape for output in model(np.zeros((1, 64, 96, 3), "float32"))]
        [TensorShape([1, 64, 96, 19]), TensorShape([1, 64, 96, 19])]
    """

    def __init__(
        self,
        num_classes,
        input_shape=(None, None, 3),
        encoder="resnet50",
        encoder_weights=None,
        output_stride=8,
        ocr_filters=512,
        key_filters=256,
        region_filters=256,
        dropout=0.1,
        aux_head=False,
        mean=None,
        std=None,
        **kwargs,
    ):
        input_shape = check_encoder_model(
            input_shape, num_classes, encoder, encoder_weights, output_stride
        )
        arguments.check_positive_int("ocr_filters", ocr_filters)
        arguments.check_positive_int("key_filters", key_filters)
        arguments.check_positive_int("region_filters", region_filters)
        dropout = arguments.check_dropout(dropout)
        arguments.check_bool("aux_head", aux_head)

        # === Functional Model ===
        images = keras.Input(shape=input_shape, dtype="float32", name="images")
        features, mean, std = encode(images, encoder, encoder_weights, output_stride, mean, std)

        region_logits = fcn_head(
            features["P4"], region_filters, num_classes, dropout, "soft_region"
        )
        pixels = conv_bn_relu(features["P5"], ocr_filters, 3, name="ocr_pixels")
        if output_stride == 32:  # P4 is at stride 16, P5 at 32.
            region_logits_p5 = ResizeToMatch(name="soft_region_resize")(region_logits, pixels)
        else:
            region_logits_p5 = region_logits
        regions = SpatialGather(name="ocr_gather")(pixels, region_logits_p5)

        query = conv_bn_relu(pixels, key_filters, 1, name="ocr_query_1")
        query = conv_bn_relu(query, key_filters, 1, name="ocr_query_2")
        key = conv_bn_relu(regions, key_filters, 1, name="ocr_key_1")
        key = conv_bn_relu(key, key_filters, 1, name="ocr_key_2")
        value = conv_bn_relu(regions, key_filters, 1, name="ocr_value")
        context = ObjectAttention(name="ocr_attention")(query, key, value)
        context = conv_bn_relu(context, ocr_filters, 1, name="ocr_context")
        x = keras.layers.Concatenate(name="ocr_concat")([context, pixels])
        x = conv_bn_relu(x, ocr_filters, 1, name="ocr_fusion")
        x = classifier(x, num_classes, dropout, name="classifier")
        logits = upsample_logits(x, images, name="logits")
        outputs = logits
        if aux_head:
            outputs = [logits, upsample_logits(region_logits, images, name="aux_logits")]

        super().__init__(inputs=images, outputs=outputs, **kwargs)

        self.keep_config(locals())


BUILDER_OPTIONS = ("weights", "output_stride", "mean", "std", "name")


def ocrnet_resnet50(num_classes, input_shape=(None, None, 3), aux_head=False, **options):
    """OCRNet on ResNet-50 dilated to output stride 8 (`keras.applications.ResNet50`).

    Paper: https://arxiv.org/abs/1909.11065.

    Args:
        num_classes: int >= 1, number of classes (1 for binary segmentation).
        input_shape: `(height, width, channels)`, height/width `None` for any size.
        aux_head: bool, also return the soft object region logits:
            `[logits, aux_logits]` (train them with `--aux_weight 0.4`).
        **options: `weights` (`None` or `"imagenet"`), `output_stride` (8, or
            16), `mean`, `std` and `name` (default `"ocrnet_resnet50"`).

    Returns:
        `OCRNet` mapping float32 `(B, H, W, C)` pixels in 0..255 to float32 logits
        `(B, H, W, num_classes)`.
    """
    arguments.check_options("ocrnet_resnet50", options, BUILDER_OPTIONS)
    options = {"name": "ocrnet_resnet50", **options}
    weights = options.pop("weights", None)
    return OCRNet(
        num_classes=num_classes,
        input_shape=input_shape,
        encoder="resnet50",
        encoder_weights=weights,
        aux_head=aux_head,
        **options,
    )
