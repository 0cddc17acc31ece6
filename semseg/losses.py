"""Segmentation losses. Each takes integer masks `(B, H, W)` and logits `(B, H, W, C)`
(`from_logits=True`) and ignores pixels labelled `IGNORE_INDEX`."""

import keras

from semseg.errors import InputError
from semseg.labels import IGNORE_INDEX


def cross_entropy():
    """Softmax cross-entropy averaged over the pixels that are not ignored.

    Keras' own `ignore_class` already divides by the number of valid pixels, so
    there is nothing to add on top of it.
    """
    return keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=IGNORE_INDEX, name="cross_entropy"
    )


LOSSES = {"ce": cross_entropy}


def build_loss(name):
    """Returns the loss registered under `name` (see `LOSSES`)."""
    if name not in LOSSES:
        raise InputError(f"--loss must be one of {', '.join(LOSSES)}. Received: loss={name!r}")
    return LOSSES[name]()
