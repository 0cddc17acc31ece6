"""The run configuration: one dataclass whose fields are `train.py`'s flags.

A run writes one work dir. `config.json` in it holds every field of
`RunConfig` plus what the run learned from its dataset (class names, palette,
number of image channels), so `eval.py`, the predictors and the exporters read
their settings from the work dir and never from repeated flags.

Work dir layout:

    W/config.json            this file
    W/checkpoints/best.keras best validation mIoU
    W/checkpoints/last.keras end of the last completed epoch
    W/backup/                Keras BackupAndRestore state for resuming
    W/logs/                  TensorBoard
    W/history.csv            one row per epoch
    W/eval/<split>/          evaluation reports
"""

import dataclasses
import json
from pathlib import Path

from semseg.errors import InputError
from semseg.files import write_json
from semseg.labels import LabelSpec

OPTIMIZERS = ("sgd", "adamw", "adam")
SCHEDULES = ("poly", "cosine", "constant")
CLASS_WEIGHT_METHODS = ("auto", "median")
PRETRAINED_WEIGHTS = ("imagenet",)
OUTPUT_STRIDES = (8, 16, 32)


@dataclasses.dataclass
class RunConfig:
    """Everything that defines a training run; one field per `train.py` flag."""

    work_dir: str
    dataset: str
    data_dir: str | None = None
    model: str = "ddrnet23_slim"
    image_size: tuple[int, int] = (512, 512)
    batch_size: int = 8
    epochs: int = 100
    steps_per_epoch: int | None = None
    optimizer: str = "sgd"
    learning_rate: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "poly"
    loss: str = "ce"
    class_weights: str | None = None
    binary: bool = False
    weights: str | None = None
    output_stride: int | None = None
    aux_weight: float = 0.0
    augment: bool = True
    scale_range: tuple[float, float] = (0.5, 2.0)
    train_split: str = "train"
    val_split: str = "val"
    seed: int = 0

    def __post_init__(self):
        self.image_size = tuple(int(value) for value in self.image_size)
        self.scale_range = tuple(float(value) for value in self.scale_range)
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
            (self.learning_rate > 0, "learning_rate", "positive"),
            (self.weight_decay >= 0, "weight_decay", "zero or positive"),
            (self.schedule in SCHEDULES, "schedule", f"one of {', '.join(SCHEDULES)}"),
            (
                _valid_class_weights(self.class_weights),
                "class_weights",
                "auto, median or a comma-separated list of non-negative numbers, one per class",
            ),
            (
                self.weights is None or self.weights in PRETRAINED_WEIGHTS,
                "weights",
                f"omitted (random initialisation) or one of {', '.join(PRETRAINED_WEIGHTS)}",
            ),
            (
                self.output_stride is None or self.output_stride in OUTPUT_STRIDES,
                "output_stride",
                f"omitted (the model's default) or one of {', '.join(map(str, OUTPUT_STRIDES))}",
            ),
            (self.aux_weight >= 0, "aux_weight", "zero or positive"),
            (
                len(self.scale_range) == 2 and 0 < self.scale_range[0] <= self.scale_range[1],
                "scale_range",
                "MIN MAX with 0 < MIN <= MAX",
            ),
            (self.dataset.count("/") == 1, "dataset", "BUILDER/CONFIG, e.g. full_semantic/camvid"),
        ]
        for valid, name, expected in checks:
            if not valid:
                raise InputError(
                    f"--{name} must be {expected}. Received: {name}={getattr(self, name)!r}"
                )
        # The loss spec has its own grammar; its errors name --loss.
        from semseg.losses import parse_loss_spec

        parse_loss_spec(self.loss)

    @property
    def work_path(self):
        return Path(self.work_dir)


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


@dataclasses.dataclass
class Run:
    """A trained run as read back from its work dir.

    Attributes:
        config: the `RunConfig` it was trained with.
        labels: class names and palette of its dataset.
        num_channels: image channels the model takes.
    """

    config: RunConfig
    labels: LabelSpec
    num_channels: int = 3

    def checkpoint_path(self, which="best"):
        """Path of the `best` or `last` checkpoint, or `which` itself if it is a path (a
        `.keras` file or an exported model)."""
        if which in ("best", "last"):
            path = self.config.work_path / "checkpoints" / f"{which}.keras"
        else:
            path = Path(which)
        if not path.exists():
            raise InputError(f"{path}: no checkpoint there (has the run finished an epoch?)")
        return path


def save_run(run):
    """Writes `config.json` into the run's work dir."""
    values = dataclasses.asdict(run.config)
    values.update(run.labels.to_dict())
    values["num_channels"] = run.num_channels
    write_json(run.config.work_path / "config.json", values)


def load_run(work_dir):
    """Reads a work dir's `config.json`.

    Args:
        work_dir: path of a run's work dir.

    Returns:
        `Run`. Raises `InputError` naming the file when it is missing or broken.
    """
    path = Path(work_dir) / "config.json"
    if not path.is_file():
        raise InputError(f"{path}: not found; is {work_dir} a work dir written by train.py?")
    try:
        values = json.loads(path.read_text())
        field_names = {field.name for field in dataclasses.fields(RunConfig)}
        config = RunConfig(**{key: value for key, value in values.items() if key in field_names})
        # The work dir may have moved since training: trust where config.json is.
        config.work_dir = str(Path(work_dir))
        return Run(
            config=config,
            labels=LabelSpec.from_dict(values),
            num_channels=int(values.get("num_channels", 3)),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(f"{path}: not a valid run config ({error})") from error
