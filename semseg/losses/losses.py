"""Segmentation losses and the `--loss` spec that combines them.

Kept whole (~780 lines): the loss classes share the ignore-index, replica-averaging and
channel helpers at the top; the `--loss` grammar is `semseg/losses/loss_spec.py`.

Every loss is a serialisable `keras.losses.Loss` that takes integer masks
`(B, H, W)` (or `(B, H, W, 1)`) with `IGNORE_INDEX` (255) for pixels to skip, and
logits (`from_logits=True`): `(B, H, W, C)` for the multi-class losses,
`(B, H, W, 1)` for the binary ones (masks 0/1). Each returns one float32 scalar
for the batch, computed in float32 whatever the compute dtype of the model
(mixed precision), and is 0 for a batch without any valid pixel.

Under a `tf.distribute` strategy with several replicas each replica returns its
share of the global batch's loss, so that the replicas' values (and gradients)
sum to what one device computes on the whole global batch: the pixel means
(`ce`, `focal`, `ohem`, `bce`, `binary_focal`) divide the replica's sum by the
pixel count (or weight) of the global batch (`_global_mean`, one all-reduce of
a scalar), and the set-level losses (`lovasz`, `dice`, `lovasz_hinge`), which
do not split into per-pixel sums, are averaged over the replicas
(`_mean_over_replicas`). OHEM picks its hard pixels within each replica's images.

| name           | loss                                                                 |
|----------------|----------------------------------------------------------------------|
| `ce`           | softmax cross-entropy, optionally class-weighted (`--class_weights`) |
| `focal`        | softmax focal loss (Lin et al. 2017), options `gamma`, `alpha`        |
| `ohem`         | online hard example mining cross-entropy, options `thresh`, `min_kept` |
| `lovasz`       | Lovasz-softmax (Berman et al. 2018), option `per_image`              |
| `dice`         | soft Dice, option `smooth` (sigmoid in binary mode)                  |
| `bce`          | binary cross-entropy on one logit channel                            |
| `binary_focal` | binary focal loss, options `gamma`, `alpha`                          |
| `lovasz_hinge` | Lovasz hinge (binary Lovasz), option `per_image`                     |

The spec string of `train.py --loss` is a comma-separated sum of terms
`NAME[(OPTION=VALUE,...)][:WEIGHT]`, e.g. `ce`, `ce:1.0,lovasz:0.5` or
`ohem(thresh=0.9,min_kept=50000):1.0,dice:0.5`. In binary mode (one logit
channel) `ce`, `focal` and `lovasz` mean their binary forms `bce`,
`binary_focal` and `lovasz_hinge`.

Example:

    loss = build_loss("ce:1.0,lovasz:0.5", class_weights=[0.5, 2.0, 1.0])
    model.compile(optimizer="adam", loss=loss)
"""

import math

import keras
from keras import ops

from semseg.base.errors import InputError
from semseg.base.labels import IGNORE_INDEX
from semseg.losses.loss_spec import (
    BINARY_EQUIVALENTS,
    BINARY_ONLY,
    CLASS_WEIGHTED,
    parse_loss_spec,
)

# MMSegmentation's OHEMPixelSampler keeps at least 100000 pixels per image of
# its 512x1024 Cityscapes crops; without an explicit `min_kept`, the same share
# of the pixels of each image is kept, whatever the crop size.
OHEM_MIN_KEPT_FRACTION = 100000 / (512 * 1024)
# Large negative error that sorts ignored pixels after every valid one.
_IGNORED_ERROR = -1e30


def _flat_labels(y_true):
    """Labels `(N,)` int32 with ignored pixels set to 0, and the float32 valid mask `(N,)`."""
    labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
    valid = ops.not_equal(labels, IGNORE_INDEX)
    return ops.where(valid, labels, 0), ops.cast(valid, "float32")


def _flat_logits(y_pred):
    """Logits as float32 `(N, C)`."""
    y_pred = ops.cast(y_pred, "float32")
    return ops.reshape(y_pred, (-1, y_pred.shape[-1]))


def _safe_divide(numerator, denominator):
    """`numerator / denominator`, 0 where the denominator is 0."""
    return ops.where(denominator > 0, numerator / ops.maximum(denominator, 1e-12), 0.0)


def _check_channels(y_pred, binary, name):
    channels = y_pred.shape[-1]
    if binary and channels != 1:
        raise ValueError(
            f"Loss '{name}' takes one logit channel (binary segmentation). "
            f"Received: logits with {channels} channels"
        )
    if not binary and channels == 1:
        raise ValueError(
            f"Loss '{name}' takes one logit per class (at least 2); for one logit channel "
            "use a binary loss (bce, binary_focal, lovasz_hinge). Received: 1 channel"
        )


def _negative_log_likelihood(y_true, y_pred):
    """Per-pixel softmax cross-entropy `(N,)`, labels `(N,)` and valid mask `(N,)`."""
    labels, valid = _flat_labels(y_true)
    log_probabilities = ops.log_softmax(_flat_logits(y_pred), axis=-1)
    picked = ops.take_along_axis(log_probabilities, labels[:, None], axis=-1)[:, 0]
    return -picked, labels, valid


def _class_weight_of_pixels(class_weights, labels):
    if class_weights is None:
        return 1.0
    return ops.take(ops.convert_to_tensor(class_weights, dtype="float32"), labels)


def _binary_targets(y_true, y_pred):
    """Flat float32 logits `(N,)`, 0/1 targets `(N,)` and the valid mask `(N,)`."""
    labels, valid = _flat_labels(y_true)
    logits = ops.reshape(ops.cast(y_pred, "float32"), (-1,))
    return logits, ops.cast(ops.equal(labels, 1), "float32"), valid


def _binary_cross_entropy(logits, targets):
    # max(x, 0) - x * t + log(1 + exp(-|x|)): stable for any logit.
    return ops.relu(logits) - logits * targets + ops.log1p(ops.exp(-ops.abs(logits)))


def _replicas_in_sync():
    """Number of replicas of the running `tf.distribute` strategy (1 outside one)."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def _global_mean(total, count):
    """This replica's share of a mean over the global batch: `total / count` summed
    over all replicas is the mean of the whole global batch.

    With one replica it is `total / count`. With several, `count` (which has no
    gradient) is summed over the replicas first, so each replica returns
    `total / global count` and Keras, which sums the replicas' losses and
    gradients, gets exactly the loss of one device with the global batch. 0 when
    no pixel of the global batch counts.
    """
    return _safe_divide(total, _global_sum(count))


def _global_sum(value):
    """`value` (no gradient) summed over the replicas of the running strategy."""
    value = ops.stop_gradient(value)
    if _replicas_in_sync() > 1:
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        if context is not None:  # None when Keras builds the model (cross-replica)
            return context.all_reduce(tf.distribute.ReduceOp.SUM, value)
    return value


def _mean_over_replicas(loss):
    """This replica's share of the mean over the replicas of a loss computed per replica
    (the losses that do not split into per-pixel sums): `loss / replicas`."""
    replicas = _replicas_in_sync()
    return loss / replicas if replicas > 1 else loss


class _SegmentationLoss(keras.losses.Loss):
    """Base class: a float32 loss with a readable name and a `get_config`."""

    def __init__(self, name, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(name=name, **kwargs)

    def get_config(self):
        return {"name": self.name}


@keras.saving.register_keras_serializable(package="semseg")
class CrossEntropy(_SegmentationLoss):
    """Softmax cross-entropy averaged over the pixels that are not ignored.

    With class weights, the mean is weighted: `sum_i w[y_i] * nll_i / sum_i w[y_i]`
    (as `torch.nn.CrossEntropyLoss(weight=w)`).

    Args:
        class_weights: `None` or one non-negative float per class.
        name: str, the loss name.

    Call arguments:
        y_true: int `(B, H, W)` class ids, 255 ignored.
        y_pred: float `(B, H, W, C)` logits.

    Returns:
        float32 scalar.
    """

    def __init__(self, class_weights=None, name="cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.class_weights = _check_class_weights(class_weights)

    def call(self, y_true, y_pred):
        _check_channels(y_pred, binary=False, name="ce")
        nll, labels, valid = _negative_log_likelihood(y_true, y_pred)
        weights = valid * _class_weight_of_pixels(self.class_weights, labels)
        return _global_mean(ops.sum(weights * nll), ops.sum(weights))

    def get_config(self):
        return {**super().get_config(), "class_weights": self.class_weights}


@keras.saving.register_keras_serializable(package="semseg")
class FocalLoss(_SegmentationLoss):
    """Softmax focal loss, `-alpha_y (1 - p_y)^gamma log p_y`, averaged over valid pixels.

    Paper: Lin, Goyal, Girshick, He and Dollar, "Focal Loss for Dense Object
    Detection", 2017, https://arxiv.org/abs/1708.02002, in its multi-class
    (softmax) form. `gamma=0` and `alpha=None` give the cross-entropy.

    Args:
        gamma: float >= 0, the focusing parameter.
        alpha: `None` (no weighting), a positive float (the same for every class)
            or one non-negative float per class (weight of the true class).
        name: str, the loss name.

    Call arguments:
        y_true: int `(B, H, W)` class ids, 255 ignored.
        y_pred: float `(B, H, W, C)` logits.

    Returns:
        float32 scalar.
    """

    def __init__(self, gamma=2.0, alpha=None, name="focal", **kwargs):
        super().__init__(name=name, **kwargs)
        self.gamma = _check_non_negative("gamma", gamma)
        if alpha is not None and not isinstance(alpha, (list, tuple)):
            alpha = _check_non_negative("alpha", alpha)
        elif alpha is not None:
            alpha = _check_class_weights(alpha)
        self.alpha = alpha

    def call(self, y_true, y_pred):
        _check_channels(y_pred, binary=False, name="focal")
        nll, labels, valid = _negative_log_likelihood(y_true, y_pred)
        probability = ops.exp(-nll)
        loss = ops.power(ops.maximum(1.0 - probability, 0.0), self.gamma) * nll
        if isinstance(self.alpha, list):
            loss = loss * _class_weight_of_pixels(self.alpha, labels)
        elif self.alpha is not None:
            loss = loss * self.alpha
        return _global_mean(ops.sum(valid * loss), ops.sum(valid))

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma, "alpha": self.alpha}


@keras.saving.register_keras_serializable(package="semseg")
class OhemCrossEntropy(_SegmentationLoss):
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

    Call arguments:
        y_true: int `(B, H, W)` class ids, 255 ignored.
        y_pred: float `(B, H, W, C)` logits.

    Returns:
        float32 scalar.
    """

    def __init__(
        self, thresh=0.7, min_kept=None, class_weights=None, name="ohem_cross_entropy", **kwargs
    ):
        super().__init__(name=name, **kwargs)
        thresh = _check_non_negative("thresh", thresh)
        if not 0 < thresh <= 1:
            raise ValueError(f"`thresh` must be in (0, 1]. Received: thresh={thresh!r}")
        if min_kept is not None:
            min_kept = _check_non_negative("min_kept", min_kept)
            if min_kept != int(min_kept):
                raise ValueError(f"`min_kept` must be an integer. Received: min_kept={min_kept!r}")
            min_kept = int(min_kept)
        self.thresh = thresh
        self.min_kept = min_kept
        self.class_weights = _check_class_weights(class_weights)

    def call(self, y_true, y_pred):
        _check_channels(y_pred, binary=False, name="ohem")
        y_true = ops.reshape(y_true, ops.shape(y_pred)[:3])
        nll, labels, valid = _negative_log_likelihood(y_true, y_pred)
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
        weights = kept * _class_weight_of_pixels(self.class_weights, labels)
        return _global_mean(ops.sum(weights * nll), ops.sum(weights))

    def get_config(self):
        return {
            **super().get_config(),
            "thresh": self.thresh,
            "min_kept": self.min_kept,
            "class_weights": self.class_weights,
        }


def _lovasz_extension(errors, foreground, valid):
    """Lovasz extension of the Jaccard loss along the last axis (Berman et al., Alg. 1).

    Args:
        errors: float32 `(..., N)`; ignored entries must be smaller than any valid one.
        foreground: float32 `(..., N)` 0/1 ground truth of the class.
        valid: float32 `(..., N)` 0/1 mask of the pixels that count.

    Returns:
        float32 `(...)`: `dot(errors sorted descending, lovasz_grad(foreground sorted))`.
    """
    order = ops.argsort(-errors, axis=-1)
    errors = ops.take_along_axis(errors, order, axis=-1)
    foreground = ops.take_along_axis(foreground, order, axis=-1)
    valid = ops.take_along_axis(valid, order, axis=-1)
    total = ops.sum(foreground, axis=-1, keepdims=True)
    intersection = total - ops.cumsum(foreground, axis=-1)
    union = total + ops.cumsum(valid - foreground, axis=-1)
    jaccard = 1.0 - _safe_divide(intersection, union)
    gradient = ops.concatenate([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], axis=-1)
    return ops.sum(ops.stop_gradient(gradient) * errors * valid, axis=-1)


@keras.saving.register_keras_serializable(package="semseg")
class LovaszSoftmax(_SegmentationLoss):
    """Lovasz-softmax: a convex surrogate of the mean IoU (Jaccard) loss.

    Paper: Berman, Rannen Triki and Blaschko, "The Lovasz-Softmax loss: A
    tractable surrogate for the optimization of the intersection-over-union
    measure in neural networks", CVPR 2018, https://arxiv.org/abs/1705.08790.
    Reference: `lovasz_softmax(probas, labels, classes="present")` of
    https://github.com/bermanmaxim/LovaszSoftmax. For each class present in the
    ground truth, the pixel errors `|1[y = c] - p_c|` are sorted in decreasing
    order and dotted with the gradient of the Lovasz extension of the Jaccard
    loss; the loss is the mean over those classes.

    Args:
        per_image: bool; compute the loss per image and average (True) or over
            the whole batch at once (False, the reference default).
        name: str, the loss name.

    Call arguments:
        y_true: int `(B, H, W)` class ids, 255 ignored.
        y_pred: float `(B, H, W, C)` logits.

    Returns:
        float32 scalar.
    """

    def __init__(self, per_image=False, name="lovasz_softmax", **kwargs):
        super().__init__(name=name, **kwargs)
        self.per_image = _check_bool("per_image", per_image)

    def call(self, y_true, y_pred):
        _check_channels(y_pred, binary=False, name="lovasz")
        num_classes = y_pred.shape[-1]
        groups = ops.shape(y_pred)[0] if self.per_image else 1
        labels, valid = _flat_labels(y_true)
        probabilities = ops.softmax(_flat_logits(y_pred), axis=-1)
        foreground = ops.one_hot(labels, num_classes) * valid[:, None]
        errors = ops.abs(foreground - probabilities)
        errors = ops.where(valid[:, None] > 0, errors, _IGNORED_ERROR)
        # (groups, C, N) so that each class of each group is sorted on its own.
        errors, foreground = (
            ops.transpose(ops.reshape(value, (groups, -1, num_classes)), (0, 2, 1))
            for value in (errors, foreground)
        )
        valid = ops.reshape(valid, (groups, 1, -1)) * ops.ones_like(errors)
        losses = _lovasz_extension(errors, foreground, valid)
        present = ops.cast(ops.sum(foreground, axis=-1) > 0, "float32")
        per_group = _safe_divide(ops.sum(losses * present, axis=-1), ops.sum(present, axis=-1))
        return _mean_over_replicas(ops.mean(per_group))

    def get_config(self):
        return {**super().get_config(), "per_image": self.per_image}


@keras.saving.register_keras_serializable(package="semseg")
class DiceLoss(_SegmentationLoss):
    """Soft Dice loss, `1 - (2 sum(p y) + smooth) / (sum(p) + sum(y) + smooth)`.

    Multi-class logits `(B, H, W, C)`: softmax probabilities, one Dice per class
    over the whole batch, averaged over all classes (a class absent from the
    batch contributes `1 - smooth / (sum(p_c) + smooth)`, which pushes its
    predictions down). One logit channel: the Dice of the foreground (class 1)
    with sigmoid probabilities. Ignored pixels take no part.

    Args:
        smooth: float > 0, the smoothing term of numerator and denominator.
        name: str, the loss name.

    Call arguments:
        y_true: int `(B, H, W)` class ids (0/1 in binary mode), 255 ignored.
        y_pred: float `(B, H, W, C)` or `(B, H, W, 1)` logits.

    Returns:
        float32 scalar.
    """

    def __init__(self, smooth=1.0, name="dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smooth = _check_non_negative("smooth", smooth)
        if self.smooth <= 0:
            raise ValueError(f"`smooth` must be positive. Received: smooth={smooth!r}")

    def call(self, y_true, y_pred):
        labels, valid = _flat_labels(y_true)
        num_classes = y_pred.shape[-1]
        if num_classes == 1:
            probabilities = ops.sigmoid(_flat_logits(y_pred))
            truth = ops.cast(ops.equal(labels, 1), "float32")[:, None]
        else:
            probabilities = ops.softmax(_flat_logits(y_pred), axis=-1)
            truth = ops.one_hot(labels, num_classes)
        probabilities = probabilities * valid[:, None]
        truth = truth * valid[:, None]
        intersection = ops.sum(probabilities * truth, axis=0)
        denominator = ops.sum(probabilities, axis=0) + ops.sum(truth, axis=0)
        dice = (2.0 * intersection + self.smooth) / (denominator + self.smooth)
        return _mean_over_replicas(ops.mean(1.0 - dice))

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth}


@keras.saving.register_keras_serializable(package="semseg")
class BinaryCrossEntropy(_SegmentationLoss):
    """Sigmoid binary cross-entropy on one logit channel, averaged over valid pixels.

    Call arguments:
        y_true: int `(B, H, W)` 0/1 masks, 255 ignored.
        y_pred: float `(B, H, W, 1)` logits.

    Returns:
        float32 scalar.
    """

    def __init__(self, name="binary_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        _check_channels(y_pred, binary=True, name="bce")
        logits, targets, valid = _binary_targets(y_true, y_pred)
        loss = _binary_cross_entropy(logits, targets)
        return _global_mean(ops.sum(valid * loss), ops.sum(valid))


@keras.saving.register_keras_serializable(package="semseg")
class BinaryFocalLoss(_SegmentationLoss):
    """Binary focal loss `-alpha_t (1 - p_t)^gamma log p_t`, averaged over valid pixels.

    Paper: https://arxiv.org/abs/1708.02002 (RetinaNet); `alpha_t = alpha` for
    foreground pixels and `1 - alpha` for background ones.

    Args:
        gamma: float >= 0, the focusing parameter.
        alpha: float in [0, 1], the weight of the foreground class, or `None`
            for no weighting.
        name: str, the loss name.

    Call arguments:
        y_true: int `(B, H, W)` 0/1 masks, 255 ignored.
        y_pred: float `(B, H, W, 1)` logits.

    Returns:
        float32 scalar.
    """

    def __init__(self, gamma=2.0, alpha=0.25, name="binary_focal", **kwargs):
        super().__init__(name=name, **kwargs)
        self.gamma = _check_non_negative("gamma", gamma)
        if alpha is not None:
            alpha = _check_non_negative("alpha", alpha)
            if alpha > 1:
                raise ValueError(f"`alpha` must be in [0, 1]. Received: alpha={alpha!r}")
        self.alpha = alpha

    def call(self, y_true, y_pred):
        _check_channels(y_pred, binary=True, name="binary_focal")
        logits, targets, valid = _binary_targets(y_true, y_pred)
        cross_entropy = _binary_cross_entropy(logits, targets)
        probability = ops.sigmoid(logits)
        probability_true = targets * probability + (1.0 - targets) * (1.0 - probability)
        loss = ops.power(ops.maximum(1.0 - probability_true, 0.0), self.gamma) * cross_entropy
        if self.alpha is not None:
            loss = loss * (targets * self.alpha + (1.0 - targets) * (1.0 - self.alpha))
        return _global_mean(ops.sum(valid * loss), ops.sum(valid))

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma, "alpha": self.alpha}


@keras.saving.register_keras_serializable(package="semseg")
class LovaszHinge(_SegmentationLoss):
    """Lovasz hinge: the binary Lovasz loss of the foreground IoU on one logit channel.

    Paper: https://arxiv.org/abs/1705.08790; reference `lovasz_hinge` of
    https://github.com/bermanmaxim/LovaszSoftmax: the hinge errors
    `1 - logit * sign` (sign +1 for foreground, -1 for background) are sorted in
    decreasing order and `relu(errors)` is dotted with the Lovasz gradient.

    Args:
        per_image: bool; per image then averaged (True, the reference default)
            or over the whole batch at once.
        name: str, the loss name.

    Call arguments:
        y_true: int `(B, H, W)` 0/1 masks, 255 ignored.
        y_pred: float `(B, H, W, 1)` logits.

    Returns:
        float32 scalar.
    """

    def __init__(self, per_image=True, name="lovasz_hinge", **kwargs):
        super().__init__(name=name, **kwargs)
        self.per_image = _check_bool("per_image", per_image)

    def call(self, y_true, y_pred):
        _check_channels(y_pred, binary=True, name="lovasz_hinge")
        groups = ops.shape(y_pred)[0] if self.per_image else 1
        logits, targets, valid = _binary_targets(y_true, y_pred)
        errors = 1.0 - logits * (2.0 * targets - 1.0)
        errors = ops.where(valid > 0, ops.relu(errors), _IGNORED_ERROR)
        errors, targets, valid = (
            ops.reshape(value, (groups, -1)) for value in (errors, targets, valid)
        )
        return _mean_over_replicas(ops.mean(_lovasz_extension(errors, targets, valid)))

    def get_config(self):
        return {**super().get_config(), "per_image": self.per_image}


@keras.saving.register_keras_serializable(package="semseg")
class BoundaryLoss(_SegmentationLoss):
    """PIDNet's boundary loss: class-balanced binary cross-entropy on the D head's logit.

    As the official `weighted_bce` (XuJiacong/PIDNet `utils/criterion.py`): over the
    global batch, boundary pixels weigh `negatives / all` and the others
    `positives / all`, and the loss is the mean weighted BCE times the
    `coefficient` (20 in the paper).

    Call arguments:
        y_true: float `(B, H, W)` boundary labels, 1 on boundaries, 0 elsewhere
            (`semseg.data.data.boundary_labels`).
        y_pred: float `(B, H, W, 1)` boundary logits.

    Returns:
        float32 scalar.
    """

    def __init__(self, coefficient=20.0, name="boundary", **kwargs):
        super().__init__(name=name, **kwargs)
        self.coefficient = float(coefficient)

    def call(self, y_true, y_pred):
        logits = ops.reshape(ops.cast(y_pred, "float32"), (-1,))
        targets = ops.reshape(ops.cast(y_true, "float32"), (-1,))
        positives = _global_sum(ops.sum(targets))
        total = _global_sum(ops.cast(ops.size(targets), "float32"))
        weights = ops.where(targets > 0.5, total - positives, positives) / total
        bce = _binary_cross_entropy(logits, targets)
        return self.coefficient * _global_mean(
            ops.sum(weights * bce), ops.cast(ops.size(targets), "float32")
        )

    def get_config(self):
        return {**super().get_config(), "coefficient": self.coefficient}


@keras.saving.register_keras_serializable(package="semseg")
class BoundaryAwareLoss(keras.losses.Loss):
    """PIDNet's boundary-awareness (BAS) loss: the semantic loss on the boundary pixels.

    The model output it takes is the main logits with the D head's boundary logit
    appended (`(B, H, W, C + 1)`, the boundary without gradient). Pixels where the
    boundary probability `sigmoid(d)` is at most `threshold` (0.8 in the paper)
    are ignored; `loss` (the run's semantic loss, OHEM in the paper) is computed
    on the rest, as the official `torch.where(sigmoid(d) > 0.8, labels, ignore)`.

    Args:
        loss: the semantic loss (a `keras.losses.Loss`).
        threshold: float in (0, 1).
    """

    def __init__(self, loss, threshold=0.8, name="boundary_aware", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(name=name, **kwargs)
        self.loss = keras.losses.get(loss) if isinstance(loss, dict) else loss
        self.threshold = float(threshold)

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        logits, boundary = y_pred[..., :-1], y_pred[..., -1]
        on_boundary = ops.sigmoid(boundary) > self.threshold
        labels = ops.where(on_boundary, ops.cast(y_true, "int32"), IGNORE_INDEX)
        return self.loss(labels, logits)

    def get_config(self):
        return {
            "name": self.name,
            "loss": keras.losses.serialize(self.loss),
            "threshold": self.threshold,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["loss"] = keras.losses.deserialize(config["loss"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="semseg")
class WeightedSum(keras.losses.Loss):
    """A weighted sum of losses: `sum_i weights[i] * losses[i](y_true, y_pred)`.

    Args:
        losses: list of `keras.losses.Loss` (or their serialised configs).
        weights: list of floats, one per loss.
        name: str, the loss name.
    """

    def __init__(self, losses, weights, name="loss", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(name=name, **kwargs)
        self.losses = [
            keras.saving.deserialize_keras_object(loss) if isinstance(loss, dict) else loss
            for loss in losses
        ]
        self.weights = [float(weight) for weight in weights]
        if len(self.losses) != len(self.weights) or not self.losses:
            raise ValueError(
                "`losses` and `weights` must be non-empty lists of the same length. "
                f"Received: {len(self.losses)} losses and {len(self.weights)} weights"
            )

    def call(self, y_true, y_pred):
        total = 0.0
        for loss, weight in zip(self.losses, self.weights):
            total = total + weight * loss.call(y_true, y_pred)
        return total

    def get_config(self):
        return {
            "name": self.name,
            "losses": [keras.saving.serialize_keras_object(loss) for loss in self.losses],
            "weights": self.weights,
        }


# --- The registry and the spec string. ---

LOSSES = {
    "ce": CrossEntropy,
    "focal": FocalLoss,
    "ohem": OhemCrossEntropy,
    "lovasz": LovaszSoftmax,
    "dice": DiceLoss,
    "bce": BinaryCrossEntropy,
    "binary_focal": BinaryFocalLoss,
    "lovasz_hinge": LovaszHinge,
}


def build_loss(spec="ce", class_weights=None, binary=False):
    """Builds the loss of a `--loss` spec.

    Args:
        spec: str, the loss spec (see the module docstring), e.g. `"ce:1.0,lovasz:0.5"`.
        class_weights: `None` or one float per class, given to the class-weighted
            terms (`ce`, `ohem`).
        binary: bool, the model has one logit channel: multi-class names mean
            their binary forms (`ce` -> `bce`, ...).

    Returns:
        A `keras.losses.Loss`: the loss itself for a single term of weight 1,
        else a `WeightedSum`.

    Raises:
        InputError: for a bad spec, a binary loss for a multi-class model, a loss
            without a binary form in binary mode, or class weights that no term uses.
    """
    terms = parse_loss_spec(spec)
    losses, weights = [], []
    for term in terms:
        name = term.name
        if binary:
            if name not in BINARY_EQUIVALENTS:
                binary_names = ", ".join(sorted(set(BINARY_EQUIVALENTS.values())))
                raise InputError(
                    f"--loss: {name} has no binary form; in binary mode use {binary_names}. "
                    f"Received: loss={spec!r}"
                )
            name = BINARY_EQUIVALENTS[name]
        elif name in BINARY_ONLY:
            raise InputError(
                f"--loss: {name} is a binary loss; it needs a dataset with exactly 2 classes "
                f"(binary mode, one logit channel). Received: loss={spec!r}"
            )
        options = dict(term.options)
        if name in CLASS_WEIGHTED and class_weights is not None:
            options["class_weights"] = list(class_weights)
        try:
            losses.append(LOSSES[name](**options))
        except ValueError as error:
            raise InputError(f"--loss: {error}. Received: loss={spec!r}") from error
        weights.append(term.weight)
    if class_weights is not None and not any(
        (BINARY_EQUIVALENTS[term.name] if binary else term.name) in CLASS_WEIGHTED for term in terms
    ):
        raise InputError(
            f"--class_weights: no term of --loss {spec!r} takes class weights "
            f"(they apply to {', '.join(CLASS_WEIGHTED)})"
        )
    if len(losses) == 1 and weights[0] == 1.0:
        return losses[0]
    return WeightedSum(losses, weights)


# --- Argument checks. ---


def _check_non_negative(argument, value):
    valid = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not valid or not math.isfinite(value) or value < 0:
        raise ValueError(
            f"`{argument}` must be a non-negative number. Received: {argument}={value!r}"
        )
    return float(value)


def _check_bool(argument, value):
    if not isinstance(value, bool):
        raise ValueError(f"`{argument}` must be True or False. Received: {argument}={value!r}")
    return value


def _check_class_weights(class_weights):
    if class_weights is None:
        return None
    values = list(class_weights) if isinstance(class_weights, (list, tuple)) else None
    if not values or any(
        isinstance(value, bool) or not isinstance(value, (int, float)) for value in values
    ):
        raise ValueError(
            f"`class_weights` must be a list of numbers. Received: class_weights={class_weights!r}"
        )
    values = [float(value) for value in values]
    if any(not math.isfinite(value) or value < 0 for value in values) or max(values) <= 0:
        raise ValueError(
            "`class_weights` must be non-negative, at least one positive. "
            f"Received: class_weights={class_weights!r}"
        )
    return values
