"""`convert_weights.py`'s settings (`ConvertWeightsConfig`), checked before TensorFlow
loads."""

import dataclasses

from full_semantic.class_tables import CLASS_TABLES
from semseg.base.cli import Command, option
from semseg.base.errors import InputError


@dataclasses.dataclass
class ConvertWeightsConfig(Command):
    """The checkpoint to convert and the work dir to write, or `--list`."""

    list: bool = option(False, "print the published names (a Markdown table)")
    model: str | None = option(
        help="ddrnet23_slim, ddrnet23, pidnet_s, pidnet_m or pidnet_l (implied by a published name)"
    )
    weights: str | None = option(
        help="a published name, or the authors' or MMSegmentation's .pth / .pt file"
    )
    output: str | None = option(help="new work dir to write")
    classes: str | None = option(
        help="class names and colours of the released model (default: from the class "
        "count, 19 = cityscapes, 11 = camvid; else class_0, class_1, ...)",
        choices=tuple(CLASS_TABLES),
    )
    dataset: str | None = option(
        help="built dataset the model was trained on (classes; eval/export use it)"
    )
    data_dir: str | None = option(help="TFDS data dir of --dataset")
    image_size: tuple[int, int] | None = option(
        help="inference size (default 1024 2048 for cityscapes, 720 960 for camvid)",
    )

    def check_together(self):
        super().check_together()
        if not self.list and not (self.weights and self.output):
            raise InputError("give --weights and --output (or --list)")
