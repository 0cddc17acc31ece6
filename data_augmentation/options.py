"""What `augment_data.py` is asked to do (`AugmentOptions`, checked before any work) and
what it did (`AugmentSummary`); `data_augmentation.augment_export` does it.
"""

import dataclasses
import pathlib

from data_augmentation import augmentation
from full_semantic import file_lists
from semseg.base.errors import InputError

BORDER_MODES = ("background", "ignore")


IMAGE_FORMATS = ("jpg", "png")


# Options that change how the output is made, not what it holds.
NOT_RECORDED = ("workers", "overwrite")


@dataclasses.dataclass
class AugmentOptions:
    """The settings of one augmentation run; the fields are `augment_data.py`'s flags.

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

    rgb_path: str
    output_path: str
    mask_path: str | None = None
    obj_mask_path: str | None = None
    label_map_path: str | None = None
    bg_path: str | None = None
    num_per_image: int = 4
    ops: str = ",".join(augmentation.DEFAULT_OPS)
    seed: int = 0
    workers: int = 1
    split: str = "train"
    image_list: str | None = None
    keep_originals: bool = True
    border: str = "background"
    ignore_label: str | None = None
    background_label: str | None = None
    op_probability: float = 0.5
    shift_limit: float = 0.1
    rotate_limit: float = 15.0
    scale_limit: float = 0.2
    image_format: str = "jpg"
    vis: bool = True
    overwrite: bool = False

    def __post_init__(self):
        integer_checks = (
            ("--num_per_image", self.num_per_image, 1),
            ("--workers", self.workers, 1),
            ("--seed", self.seed, 0),
        )
        for flag, value, minimum in integer_checks:
            if value < minimum:
                raise InputError(f"{flag} must be at least {minimum}. Received: {value}")
        for flag, value, choices in (
            ("--border", self.border, BORDER_MODES),
            ("--image_format", self.image_format, IMAGE_FORMATS),
        ):
            if value not in choices:
                raise InputError(f"{flag} must be one of {list(choices)}. Received: {value!r}")
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
