"""`eval.py`'s settings (`EvalConfig`), checked before TensorFlow loads."""

import dataclasses

from semseg.base.cli import at_least, option
from semseg.base.errors import InputError
from semseg.base.options import RunOptions

MODES = ("whole", "slide")


@dataclasses.dataclass
class EvalConfig(RunOptions):
    """What `eval.py` evaluates and reports; one field per flag."""

    split: str = option("val", "split of the dataset to evaluate")
    dataset: str | None = option(help="another built dataset with the same classes")
    data_dir: str | None = option(help="TFDS data dir (default: the run's)")
    images: str | None = option(help="folder of images to evaluate instead of a dataset")
    masks: str | None = option(help="folder of masks (class-id or colour PNGs) for --images")
    max_examples: int | None = option(help="evaluate only the first N examples", check=at_least(1))
    group_by: str | None = option(help="dataset feature to report metrics by, e.g. daytime")
    flip: bool = option(False, "add horizontally flipped views")
    scales: tuple[float, ...] = option((1.0,), "test-time scales, e.g. 0.75 1 1.25")
    mode: str = option(
        "whole",
        "whole: resize to the training size; slide: windows of --crop at full resolution",
        choices=MODES,
    )
    crop: tuple[int, int] | None = option(help="slide window")
    stride: tuple[int, int] | None = option(help="slide step")
    visualize: bool = option(False, "write best/worst panels")
    num_vis: int = option(8, "best and worst images to draw", check=at_least(0))
    latency_runs: int = option(50, "timed batch-1 runs (0 skips cost and speed)", check=at_least(0))
    batch_size: int = option(1, "also measure throughput", check=at_least(1))
    output_dir: str | None = option(help="default: WORK_DIR/eval/<split or folder name>")
    fail_under: float | None = option(help="exit with status 1 if mIoU (0..1) is below this")

    def check_together(self):
        super().check_together()
        if (self.images is None) != (self.masks is None):
            raise InputError("--images and --masks go together: a folder of images and their masks")
        if self.images is not None and self.group_by is not None:
            raise InputError(
                "--group_by needs a dataset feature; folders given by --images have none"
            )
        if self.mode == "slide" and self.crop is None:
            raise InputError("--mode slide needs --crop H W (e.g. the training --image_size)")
        if any(scale <= 0 for scale in self.scales):
            raise InputError(f"--scales must be positive. Received: {list(self.scales)}")
