"""The model zoo: every segmentation model of the toolkit, by name.

`MODELS` maps a model name to its builder, a function
`builder(num_classes, input_shape=(None, None, 3), aux_head=False, **options)`
that returns a functional `keras.Model`. Every model follows one contract:

* input: float32 `(B, H, W, C)` pixel values in 0..255 (any C >= 1 given by
  `input_shape`); the model normalises them itself;
* output: float32 logits `(B, H, W, num_classes)` at the input size from a layer
  named `logits`, for any H and W when they are dynamic (`None`);
* with `aux_head=True`: the list `[logits, aux_logits]` (DDRNet: head on the
  high-resolution branch; DeepLabV3+ and FPN: an FCN head on the stride-16
  features; OCRNet: its soft object regions).

Families (see `models/README.md` for parameters and GFLOPs of every model):

* `ddrnet23_slim`, `ddrnet23`, `ddrnet_lite`: DDRNet (`models/ddrnet.py`);
* `pidnet_s`, `pidnet_m`, `pidnet_l`: PIDNet (`models/pidnet.py`); with
  `aux_head=True` the list `[logits, aux_logits, boundary_logits]` (the P and D
  branches' training heads);
* `effdeeplabv3plus_b0` .. `_b7`, `effdeeplabv3plus_lite`,
  `mnv3deeplabv3plus_large` / `_small`, `deeplabv3plus_resnet50` / `_resnet101`:
  DeepLabV3+ on `keras.applications` encoders (`models/deeplab_v3_plus.py`,
  `models/encoders.py`); options `weights=None|"imagenet"`, `output_stride=16|8`;
* `fpn_resnet50`, `fpn_resnet101`, `fpn_effb0`: semantic FPN
  (`models/semantic_fpn.py`);
* `ocrnet_resnet50`: OCRNet on a dilated ResNet-50 (`models/ocrnet.py`).

Binary segmentation: `num_classes=1` gives one logit channel (sigmoid).

Example:
    >>> from models import build_model
    >>> model = build_model("ddrnet23_slim", num_classes=19)
    >>> model.output_shape
    (None, None, None, 19)
"""

import numbers

from models import deeplab_v3_plus, ocrnet, semantic_fpn
from models.ddrnet import DDRNet, ddrnet23, ddrnet23_slim, ddrnet_lite
from models.deeplab_v3_plus import DeepLabV3Plus
from models.encoders import ENCODERS, build_encoder
from models.layers import ResizeToMatch
from models.ocrnet import OCRNet
from models.pidnet import PIDNet, pidnet_l, pidnet_m, pidnet_s
from models.semantic_fpn import SemanticFPN

MODELS = {
    "ddrnet23_slim": ddrnet23_slim,
    "ddrnet23": ddrnet23,
    "ddrnet_lite": ddrnet_lite,
    "pidnet_s": pidnet_s,
    "pidnet_m": pidnet_m,
    "pidnet_l": pidnet_l,
    **deeplab_v3_plus.BUILDERS,
    "fpn_resnet50": semantic_fpn.fpn_resnet50,
    "fpn_resnet101": semantic_fpn.fpn_resnet101,
    "fpn_effb0": semantic_fpn.fpn_effb0,
    "ocrnet_resnet50": ocrnet.ocrnet_resnet50,
}

__all__ = [
    "ENCODERS",
    "MODELS",
    "DDRNet",
    "DeepLabV3Plus",
    "OCRNet",
    "PIDNet",
    "ResizeToMatch",
    "SemanticFPN",
    "build_encoder",
    "build_model",
    "ddrnet23",
    "ddrnet23_slim",
    "ddrnet_lite",
    "pidnet_l",
    "pidnet_m",
    "pidnet_s",
]


def build_model(name, num_classes, input_shape=(None, None, 3), **options):
    """Builds a registered segmentation model by name.

    Args:
        name: str, a key of `MODELS` (e.g. `"ddrnet23_slim"`).
        num_classes: int >= 1, number of classes (channels of the logits).
        input_shape: `(height, width, channels)`; height and width are `None`
            (any size, the default) or positive ints, channels a positive int.
        **options: model-specific options passed to the builder, e.g.
            `aux_head=True`, `mean=...`, `std=...`, and for the models on
            `keras.applications` encoders `weights="imagenet"` and
            `output_stride=8`.

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
