"""PIDNet's boundary losses: the D head's class-balanced boundary BCE and the
boundary-aware semantic loss (BAS).
"""

import keras
from keras import ops

from semseg.base.labels import IGNORE_INDEX
from semseg.losses.base import SegmentationLoss, binary_cross_entropy, global_mean, global_sum


@keras.saving.register_keras_serializable(package="semseg")
class BoundaryLoss(SegmentationLoss):
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
        positives = global_sum(ops.sum(targets))
        total = global_sum(ops.cast(ops.size(targets), "float32"))
        weights = ops.where(targets > 0.5, total - positives, positives) / total
        bce = binary_cross_entropy(logits, targets)
        return self.coefficient * global_mean(
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
