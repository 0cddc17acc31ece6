"""Flags that several benchmarks share, each defined once (`semseg.base.cli` makes the
flags from the fields): the model and its class count, the two image sizes that
benchmark figures are quoted at, and the runtimes timed in turn."""

import dataclasses

from semseg.base.cli import Command, at_least, option, size_at_least
from semseg.base.cpu import TCMALLOC

# The runtimes of bench/latency.py and the precisions each offers.
PRECISIONS = {
    "keras": ("fp32", "bf16"),
    "xla": ("fp32", "bf16"),
    "saved_model": ("fp32", "bf16"),
    "tflite": ("fp32", "fp16", "int8"),
    "onnx": ("fp32", "int8"),
    "openvino": ("fp32", "bf16", "int8"),
}
TENSORFLOW_RUNTIMES = ("keras", "xla", "saved_model")
# Every exported runtime and precision, as `RUNTIME:PRECISION` (the other benchmarks'
# default contestants).
EXPORTED_RUNTIMES = tuple(
    f"{runtime}:{precision}"
    for runtime, precisions in PRECISIONS.items()
    if runtime not in TENSORFLOW_RUNTIMES
    for precision in precisions
)

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


@dataclasses.dataclass
class TcmallocOptions(Command):
    tcmalloc: str = option(TCMALLOC, "the tcmalloc shared library")


@dataclasses.dataclass
class AlternatingOptions(Command):
    """Runtimes timed in turn, round after round, so that a noisy neighbour slows all of
    them alike (bench/peers.py, bench/compute_floor.py)."""

    runtimes: tuple[str, ...] = option(
        EXPORTED_RUNTIMES, "RUNTIME:PRECISION of bench/latency.py for our models"
    )
    threads: int = option(2, check=at_least(1))
    rounds: int = option(5, "alternating rounds", check=at_least(1))
