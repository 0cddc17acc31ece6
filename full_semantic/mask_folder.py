"""A folder of images and a folder of masks with the same names, read without a build
(`eval.py --images IMAGES --masks MASKS`).

Masks are single-channel PNGs of class ids (`IGNORE_INDEX` for void) or RGB colour
masks in the dataset's palette (black is void unless black is a class colour); the
colours are decoded by `raster.ColorLookup`, as every source's are.

    pairs = pair_images_and_masks("val/images", "val/masks")   # [(image, mask), ...]
    masks = MaskReader(palette, num_classes)
    class_ids = masks.read(pairs[0][1])                          # uint8 (H, W)
"""

from pathlib import Path

import cv2
import numpy as np

from full_semantic import file_lists, raster
from semseg.base.errors import InputError
from semseg.base.files import IMAGE_EXTENSIONS
from semseg.base.labels import IGNORE_INDEX


def pair_images_and_masks(images_dir, masks_dir):
    """`(image path, mask path)` of every image, in name order; every image needs a mask.

    Raises:
        InputError: for a missing folder, an image without a `MASKS/NAME.png`, or no image.
    """
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise InputError(f"{folder}: no such folder")
    images = file_lists.index_files(images_dir, IMAGE_EXTENSIONS)
    masks = file_lists.index_files(masks_dir, (".png",), what="mask")
    missing = [Path(str(image)).name for name, image in images.items() if name not in masks]
    if missing:
        raise InputError(
            f"{masks_dir}: no mask PNG for {len(missing)} image(s) of {images_dir} "
            f"(first: {', '.join(missing[:3])})"
        )
    if not images:
        raise InputError(f"{images_dir}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    return [(Path(str(image)), Path(str(masks[name]))) for name, image in images.items()]


class MaskReader:
    """Reads id or colour masks into class ids.

    Args:
        palette: `[r, g, b]` per class.
        num_classes: int, the number of classes (ids `0..num_classes - 1`).
    """

    def __init__(self, palette, num_classes):
        self.num_classes = num_classes
        colors = [tuple(color) for color in palette]
        ids = list(range(len(colors)))
        if (0, 0, 0) not in colors:
            colors, ids = colors + [(0, 0, 0)], ids + [IGNORE_INDEX]
        self._colors = raster.ColorLookup(colors, ids, "the dataset palette")

    def read(self, path):
        """uint8 class ids `(H, W)` of the mask file `path`.

        Raises:
            InputError: for a file that is not an 8-bit PNG, an id outside the classes, or
                a colour outside the palette.
        """
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if mask is None or mask.dtype != np.uint8:
            raise InputError(f"{path}: not an 8-bit PNG mask")
        if mask.ndim == 2:
            invalid = (mask >= self.num_classes) & (mask != IGNORE_INDEX)
            if invalid.any():
                raise InputError(
                    f"{path}: class ids {sorted(np.unique(mask[invalid]).tolist())[:5]} are "
                    f"outside 0..{self.num_classes - 1} and not {IGNORE_INDEX}"
                )
            return mask
        rgb = np.ascontiguousarray(mask[..., 2::-1])
        return self._colors.map(rgb, str(path))
