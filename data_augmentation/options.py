"""What `augment_data.py` is asked to do (`AugmentOptions`, checked before any work) and
what it did (`AugmentSummary`); `data_augmentation.augment_export` does it. The source
flags are shared with `make_blank_label.py` (`BlankLabelOptions`).
"""

import dataclasses
import os
import pathlib

from data_augmentation import augmentation
from full_semantic import file_lists
from semseg.base.cli import Command, at_least, option
from semseg.base.errors import InputError

BORDER_MODES = ("background", "ignore")


IMAGE_FORMATS = ("jpg", "png")
# The sections of `augment_data.py --help`.
INPUTS, OUTPUT, AUGMENTATION = "inputs", "output", "augmentation"


# Options that change how the output is made, not what it holds.
NOT_RECORDED = ("workers", "overwrite")


@dataclasses.dataclass
class SourceOptions(Command):
    """A labelled source: a CVAT export (folder or `.zip`), or folders of images and
    masks with a labelmap; shared by `augment_data.py` and `make_blank_label.py`."""

    rgb_path: str = option(
        required=True, group=INPUTS, help="folder of images, or a CVAT export folder or .zip"
    )
    mask_path: str | None = option(group=INPUTS, help="folder of colour masks (SegmentationClass/)")
    obj_mask_path: str | None = option(
        group=INPUTS, help="folder of instance masks (SegmentationObject/)"
    )
    label_map_path: str | None = option(group=INPUTS, help="CVAT labelmap.txt")
    background_label: str | None = option(
        group=INPUTS,
        help="background class (default: 'background', else the first labelmap class)",
    )


@dataclasses.dataclass
class AugmentOptions(SourceOptions):
    """The settings of one augmentation run; the fields (with `SourceOptions`') are
    `augment_data.py`'s flags (`semseg.base.cli` makes them), checked when an instance is
    made.

    Attributes:
        rgb_path: a folder of images, or a CVAT export folder or `.zip`.
        output_path: the export folder to write.
        mask_path: folder of colour masks (default: the export's `SegmentationClass/`).
        obj_mask_path: folder of instance masks (default: the export's
            `SegmentationObject/` if present; none for a folder of images).
        label_map_path: CVAT `labelmap.txt` (default: the export's).
        bg_path: folder (or file) of background images for `bg_replace`.
        num_per_image: augmented copies per source image.
        ops: comma-separated names of `augmentation.OPS`.
        seed: run seed; the output is a function of the inputs, options and seed.
        workers: processes; the output does not depend on it.
        split: the export list to augment and the list written.
        image_list: file of names to augment instead of the split list / whole folder.
        keep_originals: copy the source examples into the output too.
        border: `background` or `ignore`: the class painted where geometric ops
            uncover the border.
        ignore_label: the labelmap class used for `border="ignore"` (default: a
            class named `ignore`); list it in `void_labels` when building.
        background_label: the background class (default: `background`, else the
            first labelmap class); `bg_replace` replaces it.
        op_probability: chance of each op being applied to a copy.
        shift_limit, rotate_limit, scale_limit: geometric ranges, see
            `augmentation.AugmentationSettings`.
        image_format: `jpg` (OpenCV quality 95) or `png` (lossless) for augmented images.
        vis: write `VIS_MASK/` overlays.
        overwrite: replace `output_path` if it is an earlier output of this tool.
    """

    output_path: str = option(required=True, group=OUTPUT, help="export folder to write")
    bg_path: str | None = option(group=INPUTS, help="folder of background images for bg_replace")
    num_per_image: int = option(4, "copies per image", group=AUGMENTATION, check=at_least(1))
    ops: str = option(
        ",".join(augmentation.DEFAULT_OPS),
        f"comma-separated ops among {','.join(augmentation.OPS)}",
        group=AUGMENTATION,
    )
    seed: int = option(0, "run seed", group=AUGMENTATION, check=at_least(0))
    workers: int = option(
        os.cpu_count() or 1,
        "processes (the output does not depend on it; default: %(default)s, the machine's cores)",
        group=AUGMENTATION,
        check=at_least(1),
    )
    split: str = option("train", "export list to augment and to write", group=INPUTS)
    image_list: str | None = option(group=INPUTS, help="file of names (one per line) to augment")
    keep_originals: bool = option(
        True, "copy the source examples into the output too", group=OUTPUT
    )
    border: str = option(
        "background",
        "class painted where a warp uncovers the border",
        group=AUGMENTATION,
        choices=BORDER_MODES,
    )
    ignore_label: str | None = option(
        group=AUGMENTATION, help="labelmap class used by --border ignore"
    )
    op_probability: float = option(0.5, "chance of each op per copy", group=AUGMENTATION)
    shift_limit: float = option(0.1, "largest shift, fraction of the size", group=AUGMENTATION)
    rotate_limit: float = option(15.0, "largest rotation, degrees", group=AUGMENTATION)
    scale_limit: float = option(0.2, "zoom drawn from [1 - limit, 1 + limit]", group=AUGMENTATION)
    image_format: str = option(
        "jpg",
        "format of augmented images: jpg (quality 95) or png (lossless)",
        group=OUTPUT,
        choices=IMAGE_FORMATS,
    )
    vis: bool = option(True, "write VIS_MASK/ overlays", group=OUTPUT)
    overwrite: bool = option(False, "replace an earlier output of this tool", group=OUTPUT)

    def check_together(self):
        super().check_together()
        if not file_lists.SPLIT_NAME_PATTERN.match(self.split):
            raise InputError(
                f"--split must be letters, digits and underscores. Received: {self.split!r}"
            )


@dataclasses.dataclass
class AugmentSummary:
    """What `augment_export` wrote.

    Attributes:
        output_path: `pathlib.Path` of the export written.
        split: str, the list holding the augmented examples.
        num_sources: int, source examples augmented.
        num_originals: int, originals copied into `split`.
        num_augmented: int, augmented examples written.
        other_splits: dict split -> number of examples copied unchanged.
        void_label: str or None, the class to list in `void_labels` when
            building (the `--border ignore` class).
    """

    output_path: pathlib.Path
    split: str
    num_sources: int
    num_originals: int
    num_augmented: int
    other_splits: dict
    void_label: str | None = None


@dataclasses.dataclass
class BlankLabelOptions(SourceOptions):
    """`make_blank_label.py`'s flags: the source, and whether to write."""

    dry_run: bool = option(False, "list, write nothing")
