"""What every loss shares: the ignore index, float32 flattening, the replica-aware means
of a `tf.distribute` run, the checks of their arguments and the base class.
"""

import math

import keras
from keras import ops

from semseg.base.labels import IGNORE_INDEX

# Large negative error that sorts ignored pixels after every valid one.
IGNORED_ERROR = -1e30


def flat_labels(y_true):
    """Labels `(N,)` int32 with ignored pixels set to 0, and the float32 valid mask `(N,)`."""
    labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
    valid = ops.not_equal(labels, IGNORE_INDEX)
    return ops.where(valid, labels, 0), ops.cast(valid, "float32")


def flat_logits(y_pred):
    """Logits as float32 `(N, C)`."""
    y_pred = ops.cast(y_pred, "float32")
    return ops.reshape(y_pred, (-1, y_pred.shape[-1]))


def safe_divide(numerator, denominator):
    """`numerator / denominator`, 0 where the denominator is 0."""
    return ops.where(denominator > 0, numerator / ops.maximum(denominator, 1e-12), 0.0)


def check_channels(y_pred, binary, name):
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


def negative_log_likelihood(y_true, y_pred):
    """Per-pixel softmax cross-entropy `(N,)`, labels `(N,)` and valid mask `(N,)`."""
    labels, valid = flat_labels(y_true)
    log_probabilities = ops.log_softmax(flat_logits(y_pred), axis=-1)
    picked = ops.take_along_axis(log_probabilities, labels[:, None], axis=-1)[:, 0]
    return -picked, labels, valid


def class_weight_of_pixels(class_weights, labels):
    if class_weights is None:
        return 1.0
    return ops.take(ops.convert_to_tensor(class_weights, dtype="float32"), labels)


def binary_targets(y_true, y_pred):
    """Flat float32 logits `(N,)`, 0/1 targets `(N,)` and the valid mask `(N,)`."""
    labels, valid = flat_labels(y_true)
    logits = ops.reshape(ops.cast(y_pred, "float32"), (-1,))
    return logits, ops.cast(ops.equal(labels, 1), "float32"), valid


def binary_cross_entropy(logits, targets):
    # max(x, 0) - x * t + log(1 + exp(-|x|)): stable for any logit.
    return ops.relu(logits) - logits * targets + ops.log1p(ops.exp(-ops.abs(logits)))


def replicas_in_sync():
    """Number of replicas of the running `tf.distribute` strategy (1 outside one)."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def global_mean(total, count):
    """This replica's share of a mean over the global batch: `total / count` summed
    over all replicas is the mean of the whole global batch.

    With one replica it is `total / count`. With several, `count` (which has no
    gradient) is summed over the replicas first, so each replica returns
    `total / global count` and Keras, which sums the replicas' losses and
    gradients, gets exactly the loss of one device with the global batch. 0 when
    no pixel of the global batch counts.
    """
    return safe_divide(total, global_sum(count))


def global_sum(value):
    """`value` (no gradient) summed over the replicas of the running strategy."""
    value = ops.stop_gradient(value)
    if replicas_in_sync() > 1:
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        if context is not None:  # None when Keras builds the model (cross-replica)
            return context.all_reduce(tf.distribute.ReduceOp.SUM, value)
    return value


def mean_over_replicas(loss):
    """This replica's share of the mean over the replicas of a loss computed per replica
    (the losses that do not split into per-pixel sums): `loss / replicas`."""
    replicas = replicas_in_sync()
    return loss / replicas if replicas > 1 else loss


class SegmentationLoss(keras.losses.Loss):
    """Base class: a float32 loss with a readable name and a `get_config`.

    Call arguments (every loss of `semseg.losses` but the boundary one):
        y_true: int `(B, H, W)` class ids, or 0/1 masks for a binary loss; 255 ignored.
        y_pred: float `(B, H, W, C)` logits, `(B, H, W, 1)` for a binary loss.

    Returns:
        float32 scalar.
    """

    def __init__(self, name, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(name=name, **kwargs)

    def get_config(self):
        return {"name": self.name}


def check_non_negative(argument, value):
    valid = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not valid or not math.isfinite(value) or value < 0:
        raise ValueError(
            f"`{argument}` must be a non-negative number. Received: {argument}={value!r}"
        )
    return float(value)


def check_bool(argument, value):
    if not isinstance(value, bool):
        raise ValueError(f"`{argument}` must be True or False. Received: {argument}={value!r}")
    return value


def check_class_weights(class_weights):
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
