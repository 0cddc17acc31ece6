"""Flags that several benchmarks share, each defined once (`semseg.base.cli` makes the
flags from the fields): the model and its class count, and the two image sizes that
benchmark figures are quoted at."""

import dataclasses

from semseg.base.cli import Command, at_least, option, size_at_least

# Inference benchmarks: a VGA camera frame, the size the README's latency column uses.
IMAGE_SIZE = (480, 640)
# Training benchmarks: CamVid's training size (recipes/).
TRAIN_IMAGE_SIZE = (360, 480)


@dataclasses.dataclass
class ModelOptions(Command):
    model: str = option("ddrnet23_slim", "a name of models.MODELS")
    num_classes: int = option(19, "classes of the randomly initialised model", check=at_least(1))


@dataclasses.dataclass
class InferenceSizeOptions(Command):
    image_size: tuple[int, int] = option(
        IMAGE_SIZE, "input height and width", check=size_at_least(1)
    )


@dataclasses.dataclass
class TrainingSizeOptions(Command):
    image_size: tuple[int, int] = option(
        TRAIN_IMAGE_SIZE, "batch height and width", check=size_at_least(1)
    )
