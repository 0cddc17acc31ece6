"""The set-level losses: Lovasz-softmax, soft Dice and the Lovasz hinge, averaged over
replicas (`base.mean_over_replicas`).
"""

import keras
from keras import ops

from semseg.losses.base import (
    IGNORED_ERROR,
    SegmentationLoss,
    binary_targets,
    check_bool,
    check_channels,
    check_non_negative,
    flat_labels,
    flat_logits,
    mean_over_replicas,
    safe_divide,
)


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
    jaccard = 1.0 - safe_divide(intersection, union)
    gradient = ops.concatenate([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], axis=-1)
    return ops.sum(ops.stop_gradient(gradient) * errors * valid, axis=-1)


@keras.saving.register_keras_serializable(package="semseg")
class LovaszSoftmax(SegmentationLoss):
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

    Called with class ids and `(B, H, W, C)` logits (see `SegmentationLoss`).
    """

    def __init__(self, per_image=False, name="lovasz_softmax", **kwargs):
        super().__init__(name=name, **kwargs)
        self.per_image = check_bool("per_image", per_image)

    def call(self, y_true, y_pred):
        check_channels(y_pred, binary=False, name="lovasz")
        num_classes = y_pred.shape[-1]
        groups = ops.shape(y_pred)[0] if self.per_image else 1
        labels, valid = flat_labels(y_true)
        probabilities = ops.softmax(flat_logits(y_pred), axis=-1)
        foreground = ops.one_hot(labels, num_classes) * valid[:, None]
        errors = ops.abs(foreground - probabilities)
        errors = ops.where(valid[:, None] > 0, errors, IGNORED_ERROR)
        # (groups, C, N) so that each class of each group is sorted on its own.
        errors, foreground = (
            ops.transpose(ops.reshape(value, (groups, -1, num_classes)), (0, 2, 1))
            for value in (errors, foreground)
        )
        valid = ops.reshape(valid, (groups, 1, -1)) * ops.ones_like(errors)
        losses = _lovasz_extension(errors, foreground, valid)
        present = ops.cast(ops.sum(foreground, axis=-1) > 0, "float32")
        per_group = safe_divide(ops.sum(losses * present, axis=-1), ops.sum(present, axis=-1))
        return mean_over_replicas(ops.mean(per_group))

    def get_config(self):
        return {**super().get_config(), "per_image": self.per_image}


@keras.saving.register_keras_serializable(package="semseg")
class DiceLoss(SegmentationLoss):
    """Soft Dice loss, `1 - (2 sum(p y) + smooth) / (sum(p) + sum(y) + smooth)`.

    Multi-class logits `(B, H, W, C)`: softmax probabilities, one Dice per class
    over the whole batch, averaged over all classes (a class absent from the
    batch contributes `1 - smooth / (sum(p_c) + smooth)`, which pushes its
    predictions down). One logit channel: the Dice of the foreground (class 1)
    with sigmoid probabilities. Ignored pixels take no part.

    Args:
        smooth: float > 0, the smoothing term of numerator and denominator.
        name: str, the loss name.

    Called with class ids and `(B, H, W, C)` logits, or in binary mode with 0/1 masks
    and `(B, H, W, 1)` logits (see `SegmentationLoss`).
    """

    def __init__(self, smooth=1.0, name="dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smooth = check_non_negative("smooth", smooth)
        if self.smooth <= 0:
            raise ValueError(f"`smooth` must be positive. Received: smooth={smooth!r}")

    def call(self, y_true, y_pred):
        labels, valid = flat_labels(y_true)
        num_classes = y_pred.shape[-1]
        if num_classes == 1:
            probabilities = ops.sigmoid(flat_logits(y_pred))
            truth = ops.cast(ops.equal(labels, 1), "float32")[:, None]
        else:
            probabilities = ops.softmax(flat_logits(y_pred), axis=-1)
            truth = ops.one_hot(labels, num_classes)
        probabilities = probabilities * valid[:, None]
        truth = truth * valid[:, None]
        intersection = ops.sum(probabilities * truth, axis=0)
        denominator = ops.sum(probabilities, axis=0) + ops.sum(truth, axis=0)
        dice = (2.0 * intersection + self.smooth) / (denominator + self.smooth)
        return mean_over_replicas(ops.mean(1.0 - dice))

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth}


@keras.saving.register_keras_serializable(package="semseg")
class LovaszHinge(SegmentationLoss):
    """Lovasz hinge: the binary Lovasz loss of the foreground IoU on one logit channel.

    Paper: https://arxiv.org/abs/1705.08790; reference `lovasz_hinge` of
    https://github.com/bermanmaxim/LovaszSoftmax: the hinge errors
    `1 - logit * sign` (sign +1 for foreground, -1 for background) are sorted in
    decreasing order and `relu(errors)` is dotted with the Lovasz gradient.

    Args:
        per_image: bool; per image then averaged (True, the reference default)
            or over the whole batch at once.
        name: str, the loss name.

    Called with 0/1 masks and `(B, H, W, 1)` logits (see `SegmentationLoss`).
    """

    def __init__(self, per_image=True, name="lovasz_hinge", **kwargs):
        super().__init__(name=name, **kwargs)
        self.per_image = check_bool("per_image", per_image)

    def call(self, y_true, y_pred):
        check_channels(y_pred, binary=True, name="lovasz_hinge")
        groups = ops.shape(y_pred)[0] if self.per_image else 1
        logits, targets, valid = binary_targets(y_true, y_pred)
        errors = 1.0 - logits * (2.0 * targets - 1.0)
        errors = ops.where(valid > 0, ops.relu(errors), IGNORED_ERROR)
        errors, targets, valid = (
            ops.reshape(value, (groups, -1)) for value in (errors, targets, valid)
        )
        return mean_over_replicas(ops.mean(_lovasz_extension(errors, targets, valid)))

    def get_config(self):
        return {**super().get_config(), "per_image": self.per_image}
