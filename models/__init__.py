"""The model zoo: every segmentation model of the toolkit, by name.

`MODELS` maps a model name to its builder, a function
`builder(num_classes, input_shape=(None, None, 3), aux_head=False, **options)`
that returns a functional `keras.Model`. Every model follows one contract:

* input: float32 `(B, H, W, C)` pixel values in 0..255 (any C >= 1 given by
  `input_shape`); the model normalises them itself;
* output: float32 logits `(B, H, W, num_classes)` at the input size from a layer
  named `logits`, for any H and W when they are dynamic (`None`);
* with `aux_head=True` (where supported): the list `[logits, aux_logits]`.

Example:
    >>> from models import build_model
    >>> model = build_model("ddrnet23_slim", num_classes=19)
    >>> model.output_shape
    (None, None, None, 19)
"""

import numbers

from models.ddrnet import DDRNet, ddrnet23, ddrnet23_slim
from models.layers import ResizeToMatch

MODELS = {
    "ddrnet23_slim": ddrnet23_slim,
    "ddrnet23": ddrnet23,
}

__all__ = ["MODELS", "DDRNet", "ResizeToMatch", "build_model", "ddrnet23", "ddrnet23_slim"]


def build_model(name, num_classes, input_shape=(None, None, 3), **options):
    """Builds a registered segmentation model by name.

    Args:
        name: str, a key of `MODELS` (e.g. `"ddrnet23_slim"`).
        num_classes: int >= 1, number of classes (channels of the logits).
        input_shape: `(height, width, channels)`; height and width are `None`
            (any size, the default) or positive ints, channels a positive int.
        **options: model-specific options passed to the builder, e.g.
            `aux_head=True`, `mean=...`, `std=...`.

    Returns:
        A `keras.Model` named `name` mapping float32 `(B, H, W, C)` pixels in 0..255 to float32
        logits `(B, H, W, num_classes)` (or `[logits, aux_logits]` with
        `aux_head=True`).

    Raises:
        ValueError: for an unknown model name, an invalid `num_classes` or
            `input_shape`, or an option the model does not know.
    """
    if name not in MODELS:
        raise ValueError(
            f"Unknown model name. Expected one of {sorted(MODELS)}. Received: name={name!r}"
        )
    integral = isinstance(num_classes, numbers.Integral) and not isinstance(num_classes, bool)
    if not integral or num_classes < 1:
        raise ValueError(
            f"`num_classes` must be a positive integer. Received: num_classes={num_classes!r}"
        )
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
        raise ValueError(
            "`input_shape` must be a sequence `(height, width, channels)`, e.g. "
            f"(None, None, 3). Received: input_shape={input_shape!r}"
        )
    return MODELS[name](num_classes, input_shape=tuple(input_shape), **options)
