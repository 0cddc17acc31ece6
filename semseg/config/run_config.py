"""The run configuration: one dataclass whose fields are `train.py`'s flags.

Its recipes (`--recipe FILE.json`) are read by `semseg.config.recipes`, and the work dir's
`config.json` by `semseg.config.run`.

A run writes one work dir. `config.json` in it holds every field of
`RunConfig` plus what the run learned from its dataset (class names, palette,
number of image channels), so `eval.py`, the predictors and the exporters read
their settings from the work dir and never from repeated flags.

A recipe (`train.py --recipe FILE.json`) is a JSON object of `RunConfig`
fields, e.g. `{"model": "ddrnet23_slim", "image_size": [360, 480], "epochs":
100}`; flags given on the command line override it, and `config.json` records
the recipe's path next to every resolved value.
"""

import dataclasses
import logging
import math
from pathlib import Path

from semseg.base.cli import option
from semseg.base.errors import InputError
from semseg.config import published_weights
from semseg.losses.loss_spec import is_binary_spec, parse_loss_spec

logger = logging.getLogger(__name__)

OPTIMIZERS = ("sgd", "adamw", "adam")
SCHEDULES = ("poly", "cosine", "constant")
# `auto` is `inverse` (inverse class frequency, `semseg.data.class_stats`).
CLASS_WEIGHT_METHODS = ("auto", "inverse", "median", "sqrt_median")
PRETRAINED_WEIGHTS = ("imagenet",)
# `--weights FILE`: the authors' PyTorch checkpoints, keras.applications encoder files,
# Keras checkpoints (see `semseg.weights.pretrained`).
WEIGHT_FILES = (".pth", ".pt", ".pth.tar", ".h5", ".keras")
# `models.encoders.OUTPUT_STRIDES`, repeated so that flags are checked before Keras loads
# (tests/semseg/config/test_run_config.py keeps the two equal).
OUTPUT_STRIDES = (8, 16, 32)
LEARNING_RATE_SCALING = ("none", "linear")
DEFAULT_MODEL = "ddrnet23_slim"


@dataclasses.dataclass
class RunConfig:
    """Everything that defines a training run; one field per `train.py` flag.

    Each field's metadata is its flag's help (and choices, metavar): `semseg.base.cli`
    turns the fields into `train.py`'s flags, so a setting is written once.
    """

    work_dir: str = option(
        help="output folder of the run; rerun with the same one to resume it (default: a new "
        "runs/<config>-<model>)"
    )
    dataset: str = option(
        help="built TFDS dataset, e.g. full_semantic/camvid (default: the one full_semantic "
        "build in --data_dir)"
    )
    data_dir: str | None = option(
        help="TFDS data dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)"
    )
    model: str | None = option(
        help=f"a name from models.MODELS (default: {DEFAULT_MODEL}, or the model of a "
        "published --weights name)"
    )
    image_size: tuple[int, int] = option((512, 512), "training crop and inference size")
    batch_size: int = option(
        8,
        "images per step of each replica (GPU or worker); the global batch is this times the "
        "number of replicas",
    )
    epochs: int = option(100)
    steps_per_epoch: int | None = option(
        help="batches per epoch (default: one pass over the split)"
    )
    optimizer: str = option("sgd", choices=OPTIMIZERS)
    learning_rate: float = option(
        0.01, "peak learning rate (for one replica's batch with --scale_lr linear)"
    )
    momentum: float = option(0.9, "SGD only")
    weight_decay: float = option(5e-4)
    schedule: str = option(
        "poly", "poly (power 0.9), cosine or constant, over the whole run", choices=SCHEDULES
    )
    ema: float = option(
        0.0,
        "keep an exponential moving average of the weights with this momentum (e.g. 0.999; "
        "0: none), warmed up as min(EMA, (1 + step) / (10 + step)): validation, the "
        "checkpoints and so every later command use the averaged weights",
    )
    loss: str = option(
        "ce",
        "loss spec: comma-separated NAME[(OPTION=VALUE,...)][:WEIGHT] terms, NAME one of ce, "
        "focal, ohem, lovasz, dice, bce, binary_focal, lovasz_hinge; e.g. 'ce:1.0,lovasz:0.5' "
        "or 'ohem(thresh=0.7,min_kept=100000)' (see semseg/losses/loss_spec.py)",
    )
    class_weights: str | None = option(
        help="class weights of ce/ohem: auto or inverse (inverse frequency on the train split), "
        "median (median frequency balancing), sqrt_median (its square root, milder) or one "
        "comma-separated number per class"
    )
    # True when --binary is given or the loss is binary (bce, binary_focal, lovasz_hinge).
    binary: bool = option(
        False,
        "binary segmentation of a 2-class dataset: one logit (sigmoid), class 1 is the "
        "foreground; ce/focal/lovasz mean bce/binary_focal/lovasz_hinge (implied by a binary "
        "loss)",
    )
    weights: str | None = option(
        help="start from pretrained weights: a published name (python convert_weights.py "
        "--list: ddrnet23_slim_imagenet, pidnet_s_cityscapes, ...; downloaded once into "
        "$SEMSEG_CACHE), imagenet (keras.applications encoders, downloaded through Keras), "
        "the encoder's .h5 file (offline), the authors' or MMSegmentation's DDRNet/PIDNet "
        "checkpoint (.pth/.pt: Cityscapes or ImageNet; the classifier is skipped when the "
        "class count differs), or a .keras file; default: random initialisation. "
        "W/weights.json lists what loaded",
        metavar="NAME|imagenet|FILE",
    )
    output_stride: int | None = option(
        help="output stride of keras.applications encoders (default: the model's own)",
        choices=OUTPUT_STRIDES,
    )
    aux_weight: float = option(
        0.0,
        "weight of the auxiliary head's loss (0 = no auxiliary head; DDRNet and PIDNet use 0.4)",
    )
    boundary_weight: float = option(
        20.0,
        "PIDNet with --aux_weight > 0: coefficient of the D head's class-balanced boundary BCE "
        "(the paper's 20)",
    )
    bas_weight: float = option(
        1.0,
        "PIDNet with --aux_weight > 0: weight of the boundary-aware semantic loss on pixels "
        "whose boundary probability exceeds 0.8 (the paper's 1.0)",
    )
    augment: bool = option(True, "random scale, crop, flip and photometric distortion")
    scale_range: tuple[float, float] = option(
        (0.5, 2.0), "random scale factors of the augmentation", metavar=("MIN", "MAX")
    )
    crop_size: tuple[int, int] | None = option(
        help="training crop, cut after the random scaling, which stays relative to "
        "--image_size: a crop smaller than --image_size sees objects at the size inference "
        "sees them, with less context, in fewer FLOPs per step (default: --image_size)",
    )
    train_split: str = option(
        "train",
        "split to train on; TFDS split arithmetic joins splits, e.g. train+val (the standard "
        "protocol for a test split: a fixed schedule, judged by its last checkpoint)",
    )
    val_split: str = option("val", "split validated on after every epoch")
    seed: int = option(0, "seeds weights, data order, augmentation")
    steps: int | None = option(
        help="iteration-based training: total optimiser steps (replaces --epochs; an epoch is "
        "then a validation interval of --steps_per_epoch steps)"
    )
    warmup_steps: int = option(0, "linear learning-rate warm-up over this many steps")
    warmup_epochs: int = option(
        0, "linear learning-rate warm-up over this many epochs (instead of --warmup_steps)"
    )
    multi_gpu: bool = option(
        False, "data-parallel training on all visible GPUs (tf.distribute.MirroredStrategy)"
    )
    cpu_devices: int | None = option(
        help="with --multi_gpu and no GPU: split the CPU into N devices (tests the multi-device "
        "path; not faster)",
        metavar="N",
    )
    scale_lr: str = option(
        "none",
        "learning-rate scaling with the number of replicas: none, or linear (times the "
        "replicas, i.e. global batch / --batch_size)",
        choices=LEARNING_RATE_SCALING,
    )
    mixed_precision: bool = option(
        False,
        "compute in float16 on GPUs, bfloat16 on CPUs; variables, logits, softmax and loss stay "
        "float32 (float16 with loss scaling); float32 with a warning where the hardware would "
        "only emulate them (config.json records the precision that ran)",
    )
    force_mixed_precision: bool = option(
        False,
        "with --mixed_precision: keep bfloat16/float16 where the hardware lacks it (no "
        "AVX512_BF16 or AMX on a CPU, no tensor cores on a GPU), which --mixed_precision alone "
        "replaces by float32 with a warning; emulated and slower, for numerical checks",
    )
    float64: bool = option(
        False,
        "compute and keep the weights in float64 (logits and loss stay float32), for numerical "
        "checks such as comparing a multi-worker run with one process; slow",
    )
    init_from: str | None = option(
        help="fine-tune: start from the weights of a work dir (its best checkpoint) or a .keras "
        "file, layer by layer where names and shapes match (the classifier is skipped when the "
        "class count differs)",
        metavar="RUN_OR_FILE.keras",
    )
    vis_every: int = option(
        5,
        "prediction images of a fixed validation batch in TensorBoard every N epochs (0: none)",
        metavar="N",
    )
    recipe: str | None = option(
        help="JSON object of these flags without -- (e.g. recipes/camvid_ddrnet23_slim.json); "
        "flags on the command line override it",
        metavar="FILE.json",
    )

    def __post_init__(self):
        self.model = self.model or DEFAULT_MODEL
        self.image_size = tuple(int(value) for value in self.image_size)
        self.scale_range = tuple(float(value) for value in self.scale_range)
        if self.crop_size is not None:
            self.crop_size = tuple(int(value) for value in self.crop_size)
        checks = [
            (
                len(self.image_size) == 2 and min(self.image_size) >= 32,
                "image_size",
                "two sizes H W of at least 32 pixels",
            ),
            (self.batch_size >= 1, "batch_size", "at least 1"),
            (self.epochs >= 1, "epochs", "at least 1"),
            (
                self.steps_per_epoch is None or self.steps_per_epoch >= 1,
                "steps_per_epoch",
                "at least 1",
            ),
            (self.optimizer in OPTIMIZERS, "optimizer", f"one of {', '.join(OPTIMIZERS)}"),
            (_finite(self.learning_rate) and self.learning_rate > 0, "learning_rate", "positive"),
            (
                _finite(self.momentum) and 0 <= self.momentum < 1,
                "momentum",
                "in [0, 1) (SGD's momentum)",
            ),
            (
                _finite(self.weight_decay) and self.weight_decay >= 0,
                "weight_decay",
                "zero or positive",
            ),
            (self.schedule in SCHEDULES, "schedule", f"one of {', '.join(SCHEDULES)}"),
            (_finite(self.ema) and 0 <= self.ema < 1, "ema", "in [0, 1) (0: no averaging)"),
            (
                _valid_class_weights(self.class_weights),
                "class_weights",
                "auto, inverse, median, sqrt_median or a comma-separated list of non-negative "
                "numbers, one per class",
            ),
            (
                self.weights is None
                or self.weights in PRETRAINED_WEIGHTS
                or published_weights.lookup(self.weights) is not None
                or (isinstance(self.weights, str) and self.weights.lower().endswith(WEIGHT_FILES)),
                "weights",
                f"omitted (random initialisation), {', '.join(PRETRAINED_WEIGHTS)}, a published "
                f"name ({', '.join(published_weights.PUBLISHED)}) or a weights file "
                f"({', '.join(WEIGHT_FILES)})",
            ),
            (
                self.output_stride is None or self.output_stride in OUTPUT_STRIDES,
                "output_stride",
                f"omitted (the model's default) or one of {', '.join(map(str, OUTPUT_STRIDES))}",
            ),
            (_finite(self.aux_weight) and self.aux_weight >= 0, "aux_weight", "zero or positive"),
            (
                _finite(self.boundary_weight) and self.boundary_weight >= 0,
                "boundary_weight",
                "zero or positive",
            ),
            (_finite(self.bas_weight) and self.bas_weight >= 0, "bas_weight", "zero or positive"),
            (
                len(self.scale_range) == 2
                and all(_finite(value) for value in self.scale_range)
                and 0 < self.scale_range[0] <= self.scale_range[1],
                "scale_range",
                "MIN MAX with 0 < MIN <= MAX",
            ),
            (
                self.crop_size is None
                or (len(self.crop_size) == 2 and min(self.crop_size) >= 32 and self.augment),
                "crop_size",
                "two sizes H W of at least 32 pixels, with --augment (the crop is random)",
            ),
            (
                isinstance(self.dataset, str) and self.dataset.count("/") == 1,
                "dataset",
                "BUILDER/CONFIG, e.g. full_semantic/camvid",
            ),
            (isinstance(self.work_dir, str) and bool(self.work_dir), "work_dir", "a folder"),
            (self.steps is None or self.steps >= 1, "steps", "at least 1"),
            (self.warmup_steps >= 0, "warmup_steps", "zero or positive"),
            (self.warmup_epochs >= 0, "warmup_epochs", "zero or positive"),
            (
                not (self.warmup_steps and self.warmup_epochs),
                "warmup_epochs",
                "0 when --warmup_steps is given (one warm-up length)",
            ),
            (
                self.cpu_devices is None or self.cpu_devices >= 1,
                "cpu_devices",
                "omitted or at least 1",
            ),
            (
                self.scale_lr in LEARNING_RATE_SCALING,
                "scale_lr",
                f"one of {', '.join(LEARNING_RATE_SCALING)}",
            ),
            (self.vis_every >= 0, "vis_every", "zero (no images) or positive"),
            (
                not (self.float64 and self.mixed_precision),
                "float64",
                "left out with --mixed_precision (they exclude each other; give one)",
            ),
            (
                self.mixed_precision or not self.force_mixed_precision,
                "force_mixed_precision",
                "given with --mixed_precision only",
            ),
        ]
        problems = [
            f"--{name} must be {expected}. Received: {name}={getattr(self, name)!r}"
            for valid, name, expected in checks
            if not valid
        ]
        # The loss spec has its own grammar; its errors name --loss.
        try:
            parse_loss_spec(self.loss)
        except InputError as error:
            problems.append(str(error))
        if problems:
            raise InputError("; ".join(problems))
        # Resolved here, once: a binary loss implies a binary (one-logit) run, and
        # config.json says so for every later stage.
        self.binary = bool(self.binary or is_binary_spec(self.loss))

    @property
    def work_path(self):
        return Path(self.work_dir)


def _finite(value):
    """A real number, neither NaN nor infinite (a recipe can hold `NaN`, a flag `inf`)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _valid_class_weights(value):
    if value is None or value in CLASS_WEIGHT_METHODS:
        return True
    try:
        weights = [float(item) for item in str(value).split(",")]
    except ValueError:
        return False
    return all(0 <= weight < float("inf") for weight in weights) and max(weights) > 0


def parse_class_weights(value):
    """The `--class_weights` value as a method name, a list of floats, or `None`."""
    if value is None or value in CLASS_WEIGHT_METHODS:
        return value
    return [float(item) for item in value.split(",")]
