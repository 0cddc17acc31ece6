"""All-background masks for images that have none.

CVAT leaves images without any annotation out of `SegmentationClass/`, so the
export cannot be built (or augmented) until they get a mask. If those images are
truly background only, `write_blank_labels` writes that mask for them: the size of
the image, every pixel in the background class's labelmap colour (and black, "no
object", in `SegmentationObject/` when the export has that folder). Existing masks
are never touched.

    report = write_blank_labels("my_export")  # a CVAT export folder
    report.written  # [Path("my_export/SegmentationClass/frame_0007.png"), ...]
"""

import dataclasses
import pathlib

import numpy as np

from data_augmentation.source_files import (
    IMAGE_EXTENSIONS,
    MASK_EXTENSIONS,
    export_folders,
    index_files,
    read_size,
)
from full_semantic import cvat
from full_semantic.label_colors import LabelColors
from semseg.base.errors import InputError
from semseg.base.files import write_image


@dataclasses.dataclass
class BlankLabelReport:
    """What `write_blank_labels` wrote (or would write, in a dry run).

    Attributes:
        written: list of `pathlib.Path`, the masks written, class masks first.
        num_images: int, images found.
        num_existing: int, images that already had a class mask.
        label: str, the background class painted.
        color: `(r, g, b)`, its colour.
    """

    written: list
    num_images: int
    num_existing: int
    label: str
    color: tuple


def write_blank_labels(
    rgb_path,
    mask_path=None,
    obj_mask_path=None,
    label_map_path=None,
    background_label=None,
    dry_run=False,
):
    """Writes an all-background mask for every image without one.

    Args:
        rgb_path: path-like, a CVAT export folder (holding `labelmap.txt`) or a
            folder of images (searched recursively).
        mask_path: path-like folder of class masks; defaults to the export's
            `SegmentationClass/`, required for a folder of images.
        obj_mask_path: path-like folder of instance masks to complete as well;
            defaults to the export's `SegmentationObject/` if it exists.
        label_map_path: path-like `labelmap.txt`; defaults to the export's,
            required for a folder of images.
        background_label: str, the class to paint; defaults to `background`,
            else the first labelmap class.
        dry_run: bool, only report what would be written.

    Returns:
        a `BlankLabelReport`.

    Raises:
        InputError: for a missing folder or flag, an unknown class, a name with
            several images, or an image whose size cannot be read. Nothing is
            written then: every image is checked before the first mask is written.
    """
    rgb_path = pathlib.Path(rgb_path)
    if rgb_path.is_file() and rgb_path.suffix.lower() == ".zip":
        raise InputError(
            f"--rgb_path {rgb_path} is a zip: unpack the export first, the masks are "
            "written into its SegmentationClass/ folder."
        )
    if not rgb_path.is_dir():
        raise InputError(f"--rgb_path {rgb_path} is not a folder.")
    if (rgb_path / cvat.LABELMAP_FILE).is_file():
        images_dir, masks_dir, labelmap, objects_dir = export_folders(
            rgb_path, rgb_path, mask_path, obj_mask_path, label_map_path
        )
    else:
        if not mask_path or not label_map_path:
            raise InputError(
                f"--mask_path and --label_map_path are required: --rgb_path {rgb_path} is a "
                f"folder of images (no {cvat.LABELMAP_FILE} in it). Or pass the export folder."
            )
        images_dir = rgb_path
        masks_dir = pathlib.Path(mask_path)
        labelmap = pathlib.Path(label_map_path)
        objects_dir = pathlib.Path(obj_mask_path) if obj_mask_path else None
    for flag, folder in (("--mask_path", masks_dir), ("--obj_mask_path", objects_dir)):
        if folder is not None and folder.exists() and not folder.is_dir():
            raise InputError(f"{flag} {folder} is a file; expected a folder.")

    colors = LabelColors.from_labelmap(labelmap)
    background = colors.background_index(background_label)
    color = tuple(int(channel) for channel in colors.colors[background])
    images = index_files(images_dir, IMAGE_EXTENSIONS)
    if not images:
        raise InputError(f"{images_dir} holds no image ({', '.join(IMAGE_EXTENSIONS)}).")
    masks = index_files(masks_dir, MASK_EXTENSIONS)
    objects = index_files(objects_dir, MASK_EXTENSIONS) if objects_dir is not None else {}

    planned = []  # (0 for class masks or 1 for object masks, path, (width, height), colour)
    for name, image_paths in images.items():
        needs_mask = name not in masks
        needs_object = objects_dir is not None and name not in objects
        if not (needs_mask or needs_object):
            continue
        if len(image_paths) > 1:
            found = ", ".join(str(path) for path in image_paths)
            raise InputError(f"name {name!r} matches several images ({found}); keep one.")
        size = read_size(image_paths[0])
        if needs_mask:
            planned.append((0, masks_dir / f"{name}.png", size, color))
        if needs_object:
            planned.append((1, objects_dir / f"{name}.png", size, (0, 0, 0)))
    planned.sort(key=lambda item: (item[0], str(item[1])))
    written = []
    for _, path, (width, height), fill in planned:
        if path.exists():  # Never overwrite, even a file that appeared meanwhile.
            continue
        if not dry_run:
            write_image(path, np.full((height, width, 3), fill, dtype=np.uint8))
        written.append(path)
    return BlankLabelReport(
        written=written,
        num_images=len(images),
        num_existing=sum(name in masks for name in images),
        label=colors.names[background],
        color=color,
    )
