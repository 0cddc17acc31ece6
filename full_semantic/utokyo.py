"""Reads the UTokyo multispectral (MFNet) release: RGB + thermal images, 9 classes, day/night.

The released folder (`ir_seg_dataset/`, or a `.zip` of it)::

    images/NAME.png    # 640x480, 4 uint8 channels that image libraries read as RGBA:
                       # red, green, blue and thermal (not alpha)
    labels/NAME.png    # 8-bit class ids 0..8
    train.txt          # one NAME per line (also val.txt, test.txt); NAME ends in
    val.txt            # D (day) or N (night), e.g. 00001D
    test.txt

`channels` picks what the image feature holds: 3 = RGB, 1 = thermal, 4 = RGB +
thermal (configs `utokyo_rgb`, `utokyo_thermal`, `utokyo_rgbt`). Every example
also has a `daytime` feature, `"day"` or `"night"`, so evaluation can report
metrics per lighting condition.

The 9 classes follow the MFNet papers, which evaluate all 9 including
`unlabelled`; set `void_labels: ["unlabelled"]` to ignore it instead.

    release = open_source(manual_dir, scratch_dir, config)
    for key, example in release.examples("test"):
        ...  # {"image", "mask", "file_name": "00001D", "daytime": "day"}

`split_rgbt_folder` writes the 4-channel images as separate RGB and thermal PNGs
(`python -m full_semantic.split_rgbt`).
"""

import logging

import numpy as np
import tqdm
from etils import epath

from full_semantic import archives, raster
from full_semantic.file_lists import index_files, read_split_lists, resolve_names
from full_semantic.source import Source, SourceDataset
from semseg.base.errors import InputError
from semseg.base.files import write_image

logger = logging.getLogger(__name__)

IMAGES_DIR = "images"
LABELS_DIR = "labels"
SPLIT_LISTS = ("train.txt", "val.txt", "test.txt")
RELEASE_DESCRIPTION = "the UTokyo multispectral release (ir_seg_dataset)"
CLASS_NAMES = (
    "unlabelled",
    "car",
    "person",
    "bike",
    "curve",
    "car_stop",
    "guardrail",
    "color_cone",
    "bump",
)
# The colours of the MFNet/RTFNet visualisations.
PALETTE = (
    (0, 0, 0),
    (64, 0, 128),
    (64, 64, 0),
    (0, 128, 192),
    (0, 0, 192),
    (128, 128, 0),
    (64, 64, 128),
    (192, 128, 128),
    (192, 64, 0),
)
# Image channels the reader can produce, and what they hold.
CHANNEL_CONTENTS = {3: "RGB", 1: "thermal", 4: "RGB + thermal"}
CHANNELS = tuple(CHANNEL_CONTENTS)
# String features every example has beside image, mask and file_name.
TEXT_FEATURES = ("daytime",)
DAYTIME_OF_SUFFIX = {"D": "day", "N": "night"}


def daytime_of(name):
    """`"day"` or `"night"` from the last letter of a UTokyo image name, or None."""
    return DAYTIME_OF_SUFFIX.get(name[-1:].upper())


def select_channels(rgbt, channels):
    """The RGB (3), thermal (1) or all (4) channels of a uint8 `(H, W, 4)` RGBT array."""
    if channels == 3:
        return rgbt[..., :3]
    if channels == 1:
        return rgbt[..., 3:]
    if channels == 4:
        return rgbt
    raise ValueError(f"channels must be one of {CHANNELS}. Received: channels={channels}")


def read_rgbt(data, where):
    """Decodes a 4-channel 8-bit UTokyo image (read as RGBA) into uint8 `(H, W, 4)`.

    Raises:
        InputError: if the file is corrupt, not 8-bit or not 4-channel.
    """
    pixels, _ = raster.image_feature(data, 4, where, as_array=True)
    return pixels


def open_source(manual_dir, scratch_dir, config):
    """The `utokyo` reader: a `UTokyoRelease` (`Source.open`)."""
    root, zip_path = archives.locate_root(
        manual_dir, scratch_dir, IMAGES_DIR, RELEASE_DESCRIPTION, read=(LABELS_DIR, *SPLIT_LISTS)
    )
    return UTokyoRelease(
        root, channels=config.channels, void_labels=config.void_labels, zip_path=zip_path
    )


class UTokyoRelease(SourceDataset):
    """A validated UTokyo multispectral release.

    Args:
        root: path-like, the folder holding `images/`, `labels/` and the lists.
        channels: 3 (RGB), 1 (thermal) or 4 (RGB + thermal).

    `void_labels`, `zip_path` and the attributes (`split_names`: `train`, `val`, `test` as
    far as listed): see `SourceDataset`.

    Raises:
        InputError: if no split list exists, a listed name has no image or label
            or does not end in D or N, or a void label is unknown.
    """

    def __init__(self, root, channels=4, void_labels=(), zip_path=None):
        if channels not in CHANNELS:
            raise InputError(
                f"UTokyo: channels must be 3 (RGB), 1 (thermal) or 4 (RGB + thermal). "
                f"Received: channels={channels!r}"
            )
        super().__init__(root, zip_path)
        self.channels = channels
        self.set_classes(CLASS_NAMES, PALETTE, void_labels, f"UTokyo classes {list(CLASS_NAMES)}")
        self.set_examples(self._resolve_splits())

    def _resolve_splits(self):
        list_paths = [self.root / name for name in SPLIT_LISTS if (self.root / name).is_file()]
        if not list_paths:
            raise InputError(
                f"{self._describe(self.root / SPLIT_LISTS[0])} not found: the release needs "
                f"split lists {', '.join(SPLIT_LISTS)} (one image name per line) beside "
                f"{IMAGES_DIR}/ and {LABELS_DIR}/."
            )
        describe = self._describe
        images = index_files(self.root / IMAGES_DIR, (".png",), describe, "image")
        labels = index_files(self.root / LABELS_DIR, (".png",), describe, "label")
        resolved = {}
        for split, (list_path, names) in read_split_lists(list_paths, describe, (".png",)).items():
            examples = []
            for name, image_path in resolve_names(
                names, images, list_path, describe, f"{IMAGES_DIR}/"
            ):
                daytime = daytime_of(name)
                if daytime is None:
                    raise InputError(
                        f"{describe(list_path)} line {names[name]}: name {name!r} does not end "
                        "in D (day) or N (night) as UTokyo image names do (e.g. 00001D)."
                    )
                label_path = labels.get(name)
                if label_path is None:
                    raise InputError(
                        f"{describe(image_path)}: no label {LABELS_DIR}/{name}.png for name "
                        f"{name!r} listed in {describe(list_path)}."
                    )
                examples.append((name, image_path, label_path, daytime))
            resolved[split] = examples
        return resolved

    def read(self, item):
        """Decodes one example; `item` is `(name, image path, label path, daytime)`.

        Returns:
            `(key, example)`: key is the image name; example holds `image`
            (uint8 `(H, W, channels)`, or the PNG bytes when all 4 channels are
            kept), `mask` (PNG bytes of uint8 `(H, W)` class ids), `file_name`
            (the name) and `daytime` (`"day"` or `"night"`).

        Raises:
            InputError: for a corrupt, 16-bit or not 4-channel image, a label that
                is not 8-bit single-channel or holds ids above 8, or sizes that differ.
        """
        name, image_path, label_path, daytime = item
        image_where = self._describe(image_path)
        label_where = self._describe(label_path)
        image_bytes = image_path.read_bytes()
        if self.channels == 4:
            image, image_size = raster.image_feature(image_bytes, 4, image_where)
        else:
            rgbt = read_rgbt(image_bytes, image_where)
            image = np.ascontiguousarray(select_channels(rgbt, self.channels))
            image_size = (rgbt.shape[1], rgbt.shape[0])
        raw_ids, label_size = raster.read_index_image(label_path.read_bytes(), label_where)
        raster.check_size(label_size, image_size, label_where, image_where)
        return self.example(name, image, raw_ids, label_where, daytime=daytime)


def split_rgbt_folder(input_dir, output_dir, show_progress=True):
    """Writes each 4-channel UTokyo image as an RGB PNG and a thermal (grey) PNG.

    `INPUT/a/NAME.png` becomes `OUTPUT/rgb/a/NAME.png` (8-bit RGB) and
    `OUTPUT/thermal/a/NAME.png` (8-bit grey). Every input is checked before the
    first file is written, and each file is written to a temporary name and
    renamed, so an interrupted run leaves no half-written PNG.

    Args:
        input_dir: path-like, a folder of 4-channel PNGs (searched recursively),
            e.g. `ir_seg_dataset/images`.
        output_dir: path-like, the folder receiving `rgb/` and `thermal/`; it
            must not be inside `input_dir`.
        show_progress: bool, draw a tqdm progress bar.

    Returns:
        int, the number of images split.

    Raises:
        InputError: if `input_dir` holds no PNG, an image is not 8-bit 4-channel,
            or `output_dir` lies inside `input_dir`.
    """
    input_dir = epath.Path(input_dir)
    output_dir = epath.Path(output_dir)
    if not input_dir.is_dir():
        raise InputError(f"--input {input_dir}: no such folder.")
    resolved_input = epath.Path(input_dir).resolve()
    resolved_output = epath.Path(output_dir).resolve()
    if resolved_output == resolved_input or resolved_input in resolved_output.parents:
        raise InputError(
            f"--output {output_dir} is inside --input {input_dir}; pick a folder outside it."
        )
    images = index_files(input_dir, (".png",))
    if not images:
        raise InputError(
            f"--input {input_dir}: no .png image; expected the 4-channel UTokyo images "
            f"(e.g. ir_seg_dataset/{IMAGES_DIR})."
        )
    for path in images.values():
        _check_rgbt_header(path)
    progress = tqdm.tqdm(images.items(), desc="split RGBT", unit="image", disable=not show_progress)
    for key, path in progress:
        rgbt = read_rgbt(path.read_bytes(), str(path))
        write_image(output_dir / "rgb" / f"{key}.png", np.ascontiguousarray(rgbt[..., :3]))
        write_image(output_dir / "thermal" / f"{key}.png", np.ascontiguousarray(rgbt[..., 3]))
    logger.info("split %d images into %s/rgb and %s/thermal", len(images), output_dir, output_dir)
    return len(images)


def _check_rgbt_header(path):
    """Raises `InputError` unless a PNG header says 8-bit with 4 channels (RGBA)."""
    with path.open("rb") as file:
        header = file.read(26)
    depth = raster.png_bit_depth(header)
    color_type = header[25] if depth is not None else None
    if depth != 8 or color_type != 6:
        found = (
            "not a PNG"
            if depth is None
            else f"{depth}-bit, {_PNG_COLOR_TYPES.get(color_type, 'unknown colour type')}"
        )
        raise InputError(
            f"{path}: {found}; expected an 8-bit 4-channel PNG (RGB + thermal, read as RGBA)."
        )


_PNG_COLOR_TYPES = {0: "grey", 2: "RGB", 3: "paletted", 4: "grey + alpha", 6: "RGBA"}


# What --manual_dir must be, for messages, and the TFDS homepage.
MANUAL_DIR = (
    "the UTokyo multispectral release folder (images/, labels/, train.txt, ...) or a .zip of it"
)
HOMEPAGE = "https://www.mi.t.u-tokyo.ac.jp/static/projects/mil_multispectral/"
SOURCE = Source("utokyo", open_source, MANUAL_DIR, HOMEPAGE, CHANNELS, text_features=TEXT_FEATURES)
