"""Reads the original project's layout: `rgb/` images and `gt/` masks with suffixed names.

The folder (or a `.zip` of it, e.g. `full_semantic.zip` in TFDS's default manual dir)::

    rgb/image_1.png          # .jpg .jpeg .png .bmp .tif .tiff .webp
    rgb/image_2.jpg
    gt/image_1_mask.png      # the image's name, then _SUFFIX or -SUFFIX (or nothing)
    gt/image_2_output.png
    classes.json             # optional: names (and colours) of the class ids
    labelmap.txt             # optional, instead: CVAT's name:r,g,b:: lines

A mask belongs to the image whose name is the longest prefix of the mask's name
followed by `_`, `-` or nothing: `image_1_mask` is `image_1`'s, `image_10_mask`
`image_10`'s. Masks are 8-bit single-channel class ids (grey or paletted), or RGB
colour masks when `labelmap.txt` or `classes.json` gives each class its colour.
Without a class list, the classes are named by id (`class_0`, `class_1`, ... up to
the largest id in the masks); 255 is ignored. Without split lists the images are
split deterministically by name, 1 in 10 to `val` (at least one), the rest to
`train`; `splits/train.txt`, `splits/val.txt`, ... (image names) override that.
"""

import hashlib
import logging

import numpy as np

from full_semantic import archives, cvat, raster
from full_semantic.file_lists import (
    index_files,
)
from full_semantic.folder import CLASSES_FILE, read_classes
from full_semantic.source import Source, SourceDataset
from semseg.base.errors import InputError
from semseg.base.labels import IGNORE_INDEX, default_palette

logger = logging.getLogger(__name__)

IMAGES_DIR = "rgb"
MASKS_DIR = "gt"
SPLITS_DIR = "splits"
MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff")
CHANNELS = (3,)
DATASET_DESCRIPTION = "a folder of rgb/ images and gt/ masks"
# One image in VAL_EVERY goes to `val` when there are no split lists.
VAL_EVERY = 10
_SEPARATORS = ("_", "-")
_MAX_NAMES_SHOWN = 3


def open_source(manual_dir, scratch_dir, config):
    """The `rgb_gt` reader: a `RgbGtDataset` (`Source.open`)."""
    read = (MASKS_DIR, SPLITS_DIR, CLASSES_FILE, cvat.LABELMAP_FILE)
    located = archives.locate_root(manual_dir, scratch_dir, IMAGES_DIR, DATASET_DESCRIPTION, read)
    root, zip_path = located
    return RgbGtDataset(root, void_labels=config.void_labels, zip_path=zip_path)


def match_masks(image_names, mask_names):
    """Pairs each mask with the image whose name is its longest prefix + separator (or equal).

    Args:
        image_names: iterable of str, image keys (paths under `rgb/` without extension).
        mask_names: iterable of str, mask keys (paths under `gt/` without extension).

    Returns:
        `(pairs, orphans)`: dict image name -> list of mask names, and the mask
        names that match no image.
    """
    images = set(image_names)
    pairs = {name: [] for name in sorted(images)}
    orphans = []
    for mask in sorted(mask_names):
        owner = None
        if mask in images:
            owner = mask
        else:
            # The longest image name that the mask starts with, then a separator.
            for cut in range(len(mask) - 1, 0, -1):
                if mask[cut] in _SEPARATORS and mask[:cut] in images:
                    owner = mask[:cut]
                    break
        if owner is None:
            orphans.append(mask)
        else:
            pairs[owner].append(mask)
    return pairs, orphans


def _split_of(name):
    """`val` for one name in `VAL_EVERY` (a stable hash of the name), else `train`."""
    digest = hashlib.sha1(name.encode()).digest()
    return "val" if int.from_bytes(digest[:4], "big") % VAL_EVERY == 0 else "train"


class RgbGtDataset(SourceDataset):
    """A validated `rgb/` + `gt/` folder.

    Args:
        root: path-like, the folder holding `rgb/` and `gt/`.

    `void_labels`, `zip_path` and the attributes: see `SourceDataset`.

    Raises:
        InputError: if `rgb/` holds no image, an image has no mask or several,
            the class list is malformed, or (without a class list) a mask is not
            an 8-bit single-channel image.
    """

    def __init__(self, root, void_labels=(), zip_path=None):
        super().__init__(root, zip_path)
        describe = self._describe
        images = self.index_images(IMAGES_DIR)
        masks = index_files(self.root / MASKS_DIR, MASK_EXTENSIONS, describe, "mask")
        pairs, orphans = match_masks(images, masks)
        self.warn_orphans(orphans, (), f"mask(s) in {MASKS_DIR}/ match no image in {IMAGES_DIR}/")
        self._masks = {}
        for name, found in pairs.items():
            if not found:
                raise InputError(
                    f"{describe(images[name])}: no mask for image {name!r} in {MASKS_DIR}/ "
                    f"(expected {MASKS_DIR}/{name}.png or {MASKS_DIR}/{name}_SUFFIX.png)."
                )
            if len(found) > 1:
                raise InputError(
                    f"{describe(images[name])}: {len(found)} masks for image {name!r}: "
                    f"{', '.join(describe(masks[mask]) for mask in found)}; keep one."
                )
            self._masks[name] = masks[found[0]]
        names, palette, ignore_value, colors = self._read_classes()
        # Colour masks map to the class list's positions (raw ids) by exact colour.
        self._colors = None
        if colors is not None:
            self._colors = raster.ColorLookup(colors, range(len(colors)), self._classes_where)
        self.set_classes(names, palette, void_labels, self._classes_where, (ignore_value,))
        self.set_examples(self._resolve_splits(images))

    def _read_classes(self):
        """`(names, palette, ignore value, colours or None)` of the class list or the masks."""
        classes_path = self.root / CLASSES_FILE
        labelmap_path = self.root / cvat.LABELMAP_FILE
        if classes_path.exists():
            self._classes_where = self._describe(classes_path)
            names, palette, ignore_value = read_classes(classes_path, self._describe)
            return names, palette, ignore_value, [tuple(color) for color in palette]
        if labelmap_path.exists():
            self._classes_where = self._describe(labelmap_path)
            entries = cvat.read_labelmap(labelmap_path, self._classes_where)
            palette = [entry.color for entry in entries]
            return [entry.name for entry in entries], palette, IGNORE_INDEX, palette
        # Index masks without a class list: one class per id up to the largest one used.
        self._classes_where = f"the masks in {self._describe(self.root / MASKS_DIR)}"
        largest = -1
        for path in self._masks.values():
            values, _ = raster.read_index_image(path.read_bytes(), self._describe(path))
            used = values[values != IGNORE_INDEX]
            if used.size:
                largest = max(largest, int(used.max()))
        if largest < 0:
            raise InputError(f"{self._classes_where}: every pixel is 255 (ignored); no class.")
        names = [f"class_{index}" for index in range(largest + 1)]
        logger.info(
            "no %s or %s beside %s/ and %s/: %d classes named by id (%s)",
            CLASSES_FILE,
            cvat.LABELMAP_FILE,
            IMAGES_DIR,
            MASKS_DIR,
            len(names),
            ", ".join(names[:_MAX_NAMES_SHOWN]) + (", ..." if len(names) > 3 else ""),
        )
        return names, default_palette(len(names)), IGNORE_INDEX, None

    def _resolve_splits(self, images):
        listed = self.listed_splits(SPLITS_DIR, images, IMAGES_DIR)
        if listed is not None:
            return listed
        splits = {"train": [], "val": []}
        for name, path in images.items():
            splits[_split_of(name)].append((name, path))
        if not splits["val"] and len(splits["train"]) > 1:
            splits["val"].append(splits["train"].pop())
        if not splits["val"]:
            del splits["val"]
        logger.info(
            "no %s/ lists: %s (1 in %d by name)",
            SPLITS_DIR,
            ", ".join(f"{len(examples)} {split}" for split, examples in splits.items()),
            VAL_EVERY,
        )
        return splits

    def read(self, item):
        """Decodes one example; `item` is `(NAME, image path)` of `items(split)`.

        Returns:
            `(key, example)`: key is NAME; example holds `image` (encoded bytes or a
            uint8 `(H, W, 3)` array), `mask` (PNG bytes of uint8 `(H, W)` class ids)
            and `file_name` (NAME).

        Raises:
            InputError: for an unreadable or 16-bit file, an unknown mask value or
                colour, or image and mask sizes that differ.
        """
        name, image_path = item
        mask_path = self._masks[name]
        image_where = self._describe(image_path)
        mask_where = self._describe(mask_path)
        image, image_size = raster.image_feature(image_path.read_bytes(), 3, image_where)
        raw_ids, mask_size = self._read_mask(mask_path.read_bytes(), mask_where)
        raster.check_size(mask_size, image_size, mask_where, image_where)
        return self.example(name, image, raw_ids, mask_where)

    def _read_mask(self, data, where):
        mask = raster.decode(data, where)
        if self._colors is None or mask.mode not in ("RGB", "RGBA"):
            return raster.index_values(mask, data, where)  # names any other problem
        raster.check_8bit(mask, data, where)
        return self._colors.map(np.asarray(mask.convert("RGB")), where), mask.size


# What --manual_dir must be, for messages, and the TFDS homepage.
MANUAL_DIR = "the folder of rgb/ images and gt/ masks or a .zip of it (full_semantic.zip)"
HOMEPAGE = "https://www.tensorflow.org/datasets/add_dataset"
SOURCE = Source("rgb_gt", open_source, MANUAL_DIR, HOMEPAGE, channels=CHANNELS)
