"""Option groups that several commands share, each defined once: a command's config
dataclass inherits the groups it offers (`semseg.base.cli` turns the fields into flags).

    @dataclasses.dataclass
    class PredictConfig(MinAreaOptions, OverlayOptions, RunOptions):
        input: tuple[str, ...] = option(required=True, help="image files or folders")
"""

import dataclasses

from semseg.base.cli import Command, at_least, option, within
from semseg.base.errors import InputError

LATEST_RUN = "the latest finished run under runs/"
WEIGHTS_HELP = (
    "a published Cityscapes model instead of --work_dir, e.g. pidnet_s_cityscapes "
    "(python convert_weights.py --list): downloaded and converted once into $SEMSEG_CACHE"
)
THREADS_HELP = "CPU threads of TFLite, ONNX Runtime and OpenVINO (default: the machine's cores)"


@dataclasses.dataclass
class RunOptions(Command):
    """The run a command after train.py reads: `--work_dir` and `--checkpoint`, or
    `--weights NAME`, a published model."""

    work_dir: str | None = option(help=f"work dir written by train.py (default: {LATEST_RUN})")
    weights: str | None = option(help=WEIGHTS_HELP, metavar="NAME")
    checkpoint: str = option("best", "best, last, or a .keras file")


@dataclasses.dataclass
class ModelOrRunOptions(RunOptions):
    """`RunOptions`, or `--model`, an exported model, instead of a run."""

    work_dir: str | None = option(
        help=f"work dir written by train.py (default without --model: {LATEST_RUN})"
    )
    checkpoint: str = option("best", "with --work_dir: best, last, or a .keras file")
    model: str | None = option(help="an exported model (instead of --work_dir)")

    def check_together(self):
        super().check_together()
        if self.model is not None and self.weights is not None:
            raise InputError(
                "give --model (an exported file) or --weights NAME (a published model)"
            )


@dataclasses.dataclass
class ThreadsOptions(Command):
    threads: int | None = option(help=THREADS_HELP, check=at_least(1))


@dataclasses.dataclass
class OverlayOptions(Command):
    alpha: float = option(
        0.5, "mask weight in the overlay (0: the image only, 1: the mask only)", check=within(0, 1)
    )


@dataclasses.dataclass
class MinAreaOptions(Command):
    min_area: int = option(
        16,
        "pre-annotation masks: regions of fewer pixels become background (no speck objects)",
        check=at_least(0),
    )
