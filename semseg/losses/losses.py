"""Segmentation losses and the `--loss` spec that combines them.

The losses are in one module per family (`cross_entropy`, `region`, `boundary`, sharing
`base`); this module is the registry and the weighted sum. The `--loss` grammar is
`semseg/losses/loss_spec.py`.

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

import keras

from semseg.base.errors import InputError
from semseg.losses.boundary import BoundaryAwareLoss, BoundaryLoss
from semseg.losses.cross_entropy import (
    OHEM_MIN_KEPT_FRACTION,
    BinaryCrossEntropy,
    BinaryFocalLoss,
    CrossEntropy,
    FocalLoss,
    OhemCrossEntropy,
)
from semseg.losses.loss_spec import (
    BINARY_EQUIVALENTS,
    BINARY_ONLY,
    CLASS_WEIGHTED,
    parse_loss_spec,
)
from semseg.losses.region import DiceLoss, LovaszHinge, LovaszSoftmax

__all__ = [
    "LOSSES",
    "OHEM_MIN_KEPT_FRACTION",
    "BinaryCrossEntropy",
    "BinaryFocalLoss",
    "BoundaryAwareLoss",
    "BoundaryLoss",
    "CrossEntropy",
    "DiceLoss",
    "FocalLoss",
    "LovaszHinge",
    "LovaszSoftmax",
    "OhemCrossEntropy",
    "WeightedSum",
    "build_loss",
]


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
