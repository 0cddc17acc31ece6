"""The pixel-mean losses: softmax cross-entropy, focal and OHEM, and their binary forms.

Each divides its replica's sum by the pixel count (or weight) of the global batch
(`base.global_mean`), so that replicas sum to what one device computes.
"""

import keras
from keras import ops

from semseg.losses.base import (
    SegmentationLoss,
    binary_cross_entropy,
    binary_targets,
    check_channels,
    check_class_weights,
    check_non_negative,
    class_weight_of_pixels,
    global_mean,
    negative_log_likelihood,
)

# MMSegmentation's OHEMPixelSampler keeps at least 100000 pixels per image of
# its 512x1024 Cityscapes crops; without an explicit `min_kept`, the same share
# of the pixels of each image is kept, whatever the crop size.
OHEM_MIN_KEPT_FRACTION = 100000 / (512 * 1024)


@keras.saving.register_keras_serializable(package="semseg")
class CrossEntropy(SegmentationLoss):
    """Softmax cross-entropy averaged over the pixels that are not ignored.

    With class weights, the mean is weighted: `sum_i w[y_i] * nll_i / sum_i w[y_i]`
    (as `torch.nn.CrossEntropyLoss(weight=w)`).

    Args:
        class_weights: `None` or one non-negative float per class.
        name: str, the loss name.

    Called with class ids and `(B, H, W, C)` logits (see `SegmentationLoss`).
    """

    def __init__(self, class_weights=None, name="cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.class_weights = check_class_weights(class_weights)

    def call(self, y_true, y_pred):
        check_channels(y_pred, binary=False, name="ce")
        nll, labels, valid = negative_log_likelihood(y_true, y_pred)
        weights = valid * class_weight_of_pixels(self.class_weights, labels)
        return global_mean(ops.sum(weights * nll), ops.sum(weights))

    def get_config(self):
        return {**super().get_config(), "class_weights": self.class_weights}


@keras.saving.register_keras_serializable(package="semseg")
class FocalLoss(SegmentationLoss):
    """Softmax focal loss, `-alpha_y (1 - p_y)^gamma log p_y`, averaged over valid pixels.

    Paper: Lin, Goyal, Girshick, He and Dollar, "Focal Loss for Dense Object
    Detection", 2017, https://arxiv.org/abs/1708.02002, in its multi-class
    (softmax) form. `gamma=0` and `alpha=None` give the cross-entropy.

    Args:
        gamma: float >= 0, the focusing parameter.
        alpha: `None` (no weighting), a positive float (the same for every class)
            or one non-negative float per class (weight of the true class).
        name: str, the loss name.

    Called with class ids and `(B, H, W, C)` logits (see `SegmentationLoss`).
    """

    def __init__(self, gamma=2.0, alpha=None, name="focal", **kwargs):
        super().__init__(name=name, **kwargs)
        self.gamma = check_non_negative("gamma", gamma)
        if alpha is not None and not isinstance(alpha, (list, tuple)):
            alpha = check_non_negative("alpha", alpha)
        elif alpha is not None:
            alpha = check_class_weights(alpha)
        self.alpha = alpha

    def call(self, y_true, y_pred):
        check_channels(y_pred, binary=False, name="focal")
        nll, labels, valid = negative_log_likelihood(y_true, y_pred)
        probability = ops.exp(-nll)
        loss = ops.power(ops.maximum(1.0 - probability, 0.0), self.gamma) * nll
        if isinstance(self.alpha, list):
            loss = loss * class_weight_of_pixels(self.alpha, labels)
        elif self.alpha is not None:
            loss = loss * self.alpha
        return global_mean(ops.sum(valid * loss), ops.sum(valid))

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma, "alpha": self.alpha}


@keras.saving.register_keras_serializable(package="semseg")
class OhemCrossEntropy(SegmentationLoss):
    """Cross-entropy over the hard pixels only (online hard example mining).

    The pixel selection is MMSegmentation's `OHEMPixelSampler`: with `p` the
    softmax probability of each valid pixel's true class, sorted ascending, the
    threshold is `max(thresh, p_sorted[min(min_kept * batch_size, valid - 1)])`
    and the pixels with `p < threshold` are kept - every pixel the model is not
    confident about, and at least about `min_kept` per image. The loss is the
    (class-weighted) mean cross-entropy of the kept pixels, as in the official
    DDRNet/HRNet `OhemCrossEntropy`. The selection itself has no gradient.

    Args:
        thresh: float in (0, 1], the probability below which a pixel is hard.
        min_kept: int >= 0, pixels kept at least per image; `None` keeps the same
            share of each image as MMSegmentation's 100000 of a 512x1024 crop
            (`OHEM_MIN_KEPT_FRACTION`, about 19%).
        class_weights: `None` or one non-negative float per class.
        name: str, the loss name.

    Called with class ids and `(B, H, W, C)` logits (see `SegmentationLoss`).
    """

    def __init__(
        self, thresh=0.7, min_kept=None, class_weights=None, name="ohem_cross_entropy", **kwargs
    ):
        super().__init__(name=name, **kwargs)
        thresh = check_non_negative("thresh", thresh)
        if not 0 < thresh <= 1:
            raise ValueError(f"`thresh` must be in (0, 1]. Received: thresh={thresh!r}")
        if min_kept is not None:
            min_kept = check_non_negative("min_kept", min_kept)
            if min_kept != int(min_kept):
                raise ValueError(f"`min_kept` must be an integer. Received: min_kept={min_kept!r}")
            min_kept = int(min_kept)
        self.thresh = thresh
        self.min_kept = min_kept
        self.class_weights = check_class_weights(class_weights)

    def call(self, y_true, y_pred):
        check_channels(y_pred, binary=False, name="ohem")
        y_true = ops.reshape(y_true, ops.shape(y_pred)[:3])
        nll, labels, valid = negative_log_likelihood(y_true, y_pred)
        shape = ops.shape(y_true)
        batch_size, pixels_per_image = shape[0], shape[1] * shape[2]
        if self.min_kept is None:
            min_kept = ops.round(ops.cast(pixels_per_image, "float32") * OHEM_MIN_KEPT_FRACTION)
        else:
            min_kept = ops.cast(self.min_kept, "float32")
        batch_kept = ops.cast(min_kept * ops.cast(batch_size, "float32"), "int32")

        probability = ops.stop_gradient(ops.exp(-nll))
        num_valid = ops.cast(ops.sum(valid), "int32")
        # Ignored pixels sort after every valid one (probabilities are <= 1).
        sorted_probability = ops.sort(ops.where(valid > 0, probability, 2.0))
        index = ops.maximum(ops.minimum(batch_kept, num_valid - 1), 0)
        min_threshold = ops.where(num_valid > 0, ops.take(sorted_probability, index), 0.0)
        threshold = ops.maximum(min_threshold, self.thresh)
        kept = valid * ops.cast(probability < threshold, "float32")
        weights = kept * class_weight_of_pixels(self.class_weights, labels)
        return global_mean(ops.sum(weights * nll), ops.sum(weights))

    def get_config(self):
        return {
            **super().get_config(),
            "thresh": self.thresh,
            "min_kept": self.min_kept,
            "class_weights": self.class_weights,
        }


@keras.saving.register_keras_serializable(package="semseg")
class BinaryCrossEntropy(SegmentationLoss):
    """Sigmoid binary cross-entropy on one logit channel, averaged over valid pixels.

    Called with 0/1 masks and `(B, H, W, 1)` logits (see `SegmentationLoss`).
    """

    def __init__(self, name="binary_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        check_channels(y_pred, binary=True, name="bce")
        logits, targets, valid = binary_targets(y_true, y_pred)
        loss = binary_cross_entropy(logits, targets)
        return global_mean(ops.sum(valid * loss), ops.sum(valid))


@keras.saving.register_keras_serializable(package="semseg")
class BinaryFocalLoss(SegmentationLoss):
    """Binary focal loss `-alpha_t (1 - p_t)^gamma log p_t`, averaged over valid pixels.

    Paper: https://arxiv.org/abs/1708.02002 (RetinaNet); `alpha_t = alpha` for
    foreground pixels and `1 - alpha` for background ones.

    Args:
        gamma: float >= 0, the focusing parameter.
        alpha: float in [0, 1], the weight of the foreground class, or `None`
            for no weighting.
        name: str, the loss name.

    Called with 0/1 masks and `(B, H, W, 1)` logits (see `SegmentationLoss`).
    """

    def __init__(self, gamma=2.0, alpha=0.25, name="binary_focal", **kwargs):
        super().__init__(name=name, **kwargs)
        self.gamma = check_non_negative("gamma", gamma)
        if alpha is not None:
            alpha = check_non_negative("alpha", alpha)
            if alpha > 1:
                raise ValueError(f"`alpha` must be in [0, 1]. Received: alpha={alpha!r}")
        self.alpha = alpha

    def call(self, y_true, y_pred):
        check_channels(y_pred, binary=True, name="binary_focal")
        logits, targets, valid = binary_targets(y_true, y_pred)
        cross_entropy = binary_cross_entropy(logits, targets)
        probability = ops.sigmoid(logits)
        probability_true = targets * probability + (1.0 - targets) * (1.0 - probability)
        loss = ops.power(ops.maximum(1.0 - probability_true, 0.0), self.gamma) * cross_entropy
        if self.alpha is not None:
            loss = loss * (targets * self.alpha + (1.0 - targets) * (1.0 - self.alpha))
        return global_mean(ops.sum(valid * loss), ops.sum(valid))

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma, "alpha": self.alpha}
