"""Reads a plain folder of images and 8-bit index label PNGs (the MMSegmentation custom layout).

The folder (or a `.zip` of it)::

    classes.json          # [{"name": "background", "color": [0, 0, 0]}, ...]
                          # or {"classes": [...], "ignore_index": 255}
    images/NAME.jpg       # .jpg .jpeg .png .bmp .tif .tiff .webp; subfolders allowed
    labels/NAME.png       # 8-bit single-channel (grey or paletted) class ids, same NAME
    splits/train.txt      # optional: NAMEs per split (also val.txt, test.txt, ...)

NAME is the path under `images/` without extension (`city/0001` for
`images/city/0001.jpg`). The class id of a label pixel is its value (a paletted
PNG's index, not its colour); `ignore_index` (default 255) marks pixels to ignore.
A class without `"color"` gets one from `semseg.base.labels.default_palette`. Without
`splits/`, every image goes to `train`.

`channels` (1, 3 or 4) sets the image feature: grey, RGB, or 4 channels (e.g.
RGB + near infrared stored as RGBA).

    dataset = open_source(manual_dir, scratch_dir, config)
    for key, example in dataset.examples("val"):
        ...  # {"image", "mask": PNG bytes of (H, W) ids, "file_name": NAME}
"""

import logging

from etils import epath

from full_semantic import archives, raster
from full_semantic.file_lists import index_files, read_json
from full_semantic.source import Source, SourceDataset
from semseg.base.errors import InputError
from semseg.base.labels import IGNORE_INDEX, default_palette

logger = logging.getLogger(__name__)

CLASSES_FILE = "classes.json"
IMAGES_DIR = "images"
LABELS_DIR = "labels"
SPLITS_DIR = "splits"
LABEL_EXTENSIONS = (".png",)
CHANNELS = (1, 3, 4)
DATASET_DESCRIPTION = "a dataset folder (classes.json, images/, labels/)"
_EXAMPLE = '[{"name": "background", "color": [0, 0, 0]}, {"name": "road", "color": [128, 64, 128]}]'


def read_classes(path, describe=str):
    """Parses `classes.json`.

    Args:
        path: path-like, the file.
        describe: callable naming a path in messages.

    Returns:
        `(names, palette, ignore_index)`: list of str, list of `(r, g, b)` (one
        per class; missing colours filled from `default_palette`) and the int
        label value meaning ignore.

    Raises:
        InputError: if the file is not JSON or not in one of the two accepted
            shapes, a name is empty or repeated, a colour is not three ints in
            0..255, or `ignore_index` is not in `len(classes)..255`.
    """
    path = epath.Path(path)
    where = describe(path)
    content = read_json(path, describe)
    ignore_index = IGNORE_INDEX
    if isinstance(content, dict):
        unknown = sorted(set(content) - {"classes", "ignore_index"})
        if unknown or "classes" not in content:
            raise InputError(
                f"{where}: expected a list of classes or an object with 'classes' and an "
                f"optional 'ignore_index'. Received keys: {sorted(content)}"
            )
        ignore_index = content.get("ignore_index", IGNORE_INDEX)
        content = content["classes"]
    if not isinstance(content, list) or not content:
        raise InputError(f"{where}: expected a non-empty list of classes, e.g. {_EXAMPLE}.")
    names = []
    colors = []
    for index, entry in enumerate(content):
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise InputError(
                f"{where}: class {index}: expected an object with a 'name' string, e.g. "
                f"{_EXAMPLE}. Received: {entry!r}"
            )
        name = entry["name"].strip()
        if not name:
            raise InputError(f"{where}: class {index} has an empty name.")
        if name in names:
            raise InputError(
                f"{where}: class {index}: name {name!r} is already class {names.index(name)}."
            )
        color = entry.get("color")
        if color is not None and (
            not isinstance(color, list)
            or len(color) != 3
            or not all(isinstance(value, int) and 0 <= value <= 255 for value in color)
        ):
            raise InputError(
                f"{where}: class {index} ({name!r}): color must be [r, g, b] with integers "
                f"in 0..255. Received: {color!r}"
            )
        names.append(name)
        colors.append(tuple(color) if color is not None else None)
    if not isinstance(ignore_index, int) or isinstance(ignore_index, bool):
        raise InputError(f"{where}: ignore_index must be an integer. Received: {ignore_index!r}")
    if not len(names) <= ignore_index <= 255:
        raise InputError(
            f"{where}: ignore_index {ignore_index} must be in {len(names)}..255, above the class "
            "ids; to ignore a class, list it in the config's void_labels instead."
        )
    fallback = default_palette(len(names))
    palette = [color or tuple(fallback[index]) for index, color in enumerate(colors)]
    return names, palette, ignore_index


def open_source(manual_dir, scratch_dir, config):
    """The `folder` reader: a `FolderDataset` (`Source.open`)."""
    read = (IMAGES_DIR, LABELS_DIR, SPLITS_DIR)
    located = archives.locate_root(manual_dir, scratch_dir, CLASSES_FILE, DATASET_DESCRIPTION, read)
    root, zip_path = located
    return FolderDataset(
        root, channels=config.channels, void_labels=config.void_labels, zip_path=zip_path
    )


class FolderDataset(SourceDataset):
    """A validated folder of images, index label PNGs, split lists and `classes.json`.

    Args:
        root: path-like, the folder holding `classes.json`.
        channels: 1, 3 or 4, the channels of the image feature.

    `void_labels`, `zip_path` and the attributes: see `SourceDataset`.

    Raises:
        InputError: if `classes.json` is malformed, there is no image, a split
            list names a missing image, a listed image has no label, or two
            images (or labels) share a name.
    """

    def __init__(self, root, channels=3, void_labels=(), zip_path=None):
        if channels not in CHANNELS:
            raise InputError(f"folder: channels must be 1, 3 or 4. Received: channels={channels!r}")
        super().__init__(root, zip_path)
        self.channels = channels
        describe = self._describe
        classes_path = self.root / CLASSES_FILE
        names, palette, self.ignore_value = read_classes(classes_path, describe)
        self.set_classes(names, palette, void_labels, describe(classes_path), (self.ignore_value,))
        images = self.index_images(IMAGES_DIR)
        self._labels = index_files(self.root / LABELS_DIR, LABEL_EXTENSIONS, describe, "label")
        self.warn_orphans(
            self._labels, images, f"label(s) in {LABELS_DIR}/ have no image in {IMAGES_DIR}/"
        )
        self.set_examples(self._resolve_splits(images))

    def _resolve_splits(self, images):
        resolved = self.listed_splits(SPLITS_DIR, images, IMAGES_DIR)
        if resolved is not None:
            listed = {name for examples in resolved.values() for name, _ in examples}
            unlisted = len(images) - len(listed)
            if unlisted:
                logger.info("%d image(s) in %s/ are in no split list", unlisted, IMAGES_DIR)
        else:
            resolved = {"train": list(images.items())}
        for examples in resolved.values():
            for name, image_path in examples:
                if name not in self._labels:
                    raise InputError(
                        f"{self._describe(image_path)}: no label {LABELS_DIR}/{name}.png for "
                        f"image {name!r}."
                    )
        return resolved

    def read(self, item):
        """Decodes one example; `item` is `(NAME, image path)` of `items(split)`.

        Returns:
            `(key, example)`: key is NAME; example holds `image` (the encoded
            bytes, or a uint8 `(H, W, channels)` array), `mask` (PNG bytes of
            uint8 `(H, W)` class ids) and `file_name` (NAME).

        Raises:
            InputError: for an unreadable, 16-bit or wrong-channel file, a label
                value that is no class nor `ignore_index`, or sizes that differ.
        """
        name, image_path = item
        label_path = self._labels[name]
        image_where = self._describe(image_path)
        label_where = self._describe(label_path)
        image_bytes = image_path.read_bytes()
        image, image_size = raster.image_feature(image_bytes, self.channels, image_where)
        raw_ids, label_size = raster.read_index_image(label_path.read_bytes(), label_where)
        raster.check_size(label_size, image_size, label_where, image_where)
        return self.example(name, image, raw_ids, label_where)


# What --manual_dir must be, for messages, and the TFDS homepage.
MANUAL_DIR = "the dataset folder (classes.json, images/, labels/) or a .zip of it"
HOMEPAGE = "https://mmsegmentation.readthedocs.io/en/latest/advanced_guides/add_datasets.html"
SOURCE = Source("folder", open_source, MANUAL_DIR, HOMEPAGE, channels=CHANNELS)
