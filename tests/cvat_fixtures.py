"""Writes tiny CVAT "Segmentation mask 1.1" exports for tests.

    from cvat_fixtures import write_cvat_export, zip_folder

    export = write_cvat_export(tmp_path / "export")  # 3 classes, train a b c, val d e
    write_cvat_export(tmp_path / "broken", omit_masks=["b"], image_size=(12, 8))
    zip_folder(export, tmp_path / "export.zip", top_level="task_1")
    builder = build_demo_dataset(tmp_path, num_train=8, num_val=2, size=(48, 64), seed=1)

Masks follow `class_index_pattern`, so tests know the class of every pixel.
`full_semantic/dummy_data/cvat/` was written with
`write_cvat_export("full_semantic/dummy_data/cvat", image_extensions={"b": ".png"})`.
"""

import io
import pathlib
import zipfile
import zlib

import numpy as np
from PIL import Image

DEFAULT_LABELS = (
    ("background", (0, 0, 0)),
    ("road", (128, 64, 128)),
    ("car", (64, 0, 128)),
)
DEFAULT_SPLITS = {"train": ("a", "b", "c"), "val": ("d", "e")}
CORRUPT_BYTES = b"this is not an image"
_PIL_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}


def class_index_pattern(image_size, num_classes):
    """The labelmap index of every mask pixel written by `write_cvat_export`.

    Args:
        image_size: `(width, height)` ints.
        num_classes: int, number of labelmap entries.

    Returns:
        int64 array `(height, width)`, `(x + 2 * y) % num_classes`.
    """
    width, height = image_size
    rows, columns = np.mgrid[0:height, 0:width]
    return (columns + 2 * rows) % num_classes


def image_pattern(name, image_size):
    """The RGB content of image `name`: uint8 `(height, width, 3)`, fixed per name."""
    width, height = image_size
    generator = np.random.default_rng(zlib.crc32(name.encode()))
    return generator.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def encode_image(array, extension):
    """Bytes of a uint8 `(H, W)` or `(H, W, C)` array in the format of `extension`."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(
        buffer, format=_PIL_FORMATS[extension.lower()]
    )
    return buffer.getvalue()


def labelmap_text(labels):
    """`labelmap.txt` content, CVAT style, for `(name, (r, g, b))` pairs."""
    lines = ["# label:color_rgb:parts:actions"]
    lines += [f"{name}:{red},{green},{blue}::" for name, (red, green, blue) in labels]
    return "\n".join(lines) + "\n"


def write_cvat_export(
    root,
    labels=DEFAULT_LABELS,
    splits=None,
    *,
    image_size=(12, 8),
    image_extension=".jpg",
    image_extensions=None,
    omit_images=(),
    omit_masks=(),
    corrupt_images=(),
    corrupt_masks=(),
    masks=None,
    labelmap=None,
    omit_labelmap=False,
):
    """Writes a CVAT "Segmentation mask 1.1" export folder.

    Args:
        root: path-like, the export folder to create.
        labels: sequence of `(name, (r, g, b))`, the labelmap in order.
        splits: mapping of list name (`"train"`, `"val"`, `"default"`, ...) to
            image names; defaults to `DEFAULT_SPLITS`. An image and a mask are
            written once per distinct name.
        image_size: `(width, height)` of every image and mask.
        image_extension: str, extension of the files in `JPEGImages/`.
        image_extensions: optional mapping name -> extension overriding
            `image_extension` for some names (e.g. `{"b": ".png"}`).
        omit_images: names listed but written without an image.
        omit_masks: names written without a mask.
        corrupt_images: names whose image file holds `CORRUPT_BYTES`.
        corrupt_masks: names whose mask file holds `CORRUPT_BYTES`.
        masks: optional mapping name -> uint8 array `(H, W, 3)` (or any array
            PIL can save as PNG) written as that name's mask instead of the
            `class_index_pattern` colours.
        labelmap: optional str, the raw `labelmap.txt` content (e.g. a malformed
            one) written instead of the lines made from `labels`.
        omit_labelmap: bool, write no `labelmap.txt`.

    Returns:
        `pathlib.Path` of `root`.
    """
    root = pathlib.Path(root)
    splits = DEFAULT_SPLITS if splits is None else splits
    image_extensions = dict(image_extensions or {})
    masks = dict(masks or {})
    for folder in ("ImageSets/Segmentation", "JPEGImages", "SegmentationClass"):
        (root / folder).mkdir(parents=True, exist_ok=True)

    if not omit_labelmap:
        text = labelmap_text(labels) if labelmap is None else labelmap
        (root / "labelmap.txt").write_text(text)
    for split, names in splits.items():
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text(
            "".join(f"{name}\n" for name in names)
        )

    palette = np.array([color for _, color in labels], dtype=np.uint8).reshape(-1, 3)
    colour_mask = palette[class_index_pattern(image_size, len(palette))] if len(palette) else None
    names = list(dict.fromkeys(name for names in splits.values() for name in names))
    for name in names:
        extension = image_extensions.get(name, image_extension)
        image_path = root / "JPEGImages" / f"{name}{extension}"
        mask_path = root / "SegmentationClass" / f"{name}.png"
        image_path.parent.mkdir(parents=True, exist_ok=True)
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        if name not in omit_images:
            if name in corrupt_images:
                image_path.write_bytes(CORRUPT_BYTES)
            else:
                image_path.write_bytes(encode_image(image_pattern(name, image_size), extension))
        if name not in omit_masks:
            if name in corrupt_masks:
                mask_path.write_bytes(CORRUPT_BYTES)
            else:
                mask_bytes = encode_image(masks.get(name, colour_mask), ".png")
                mask_path.write_bytes(mask_bytes)
                # Real exports also hold instance masks, which the reader ignores.
                object_path = root / "SegmentationObject" / f"{name}.png"
                object_path.parent.mkdir(parents=True, exist_ok=True)
                object_path.write_bytes(mask_bytes)
    return root


def zip_folder(folder, zip_path, top_level=None, extra_members=None):
    """Zips a folder, at the root of the zip or inside one top-level folder.

    Args:
        folder: path-like, the folder to zip (e.g. an export).
        zip_path: path-like, the `.zip` to write.
        top_level: optional str, folder name every member is put under.
        extra_members: optional mapping member name -> bytes, written as is
            (e.g. `{"../evil.txt": b"x"}` for zip-slip tests).

    Returns:
        `pathlib.Path` of `zip_path`.
    """
    folder = pathlib.Path(folder)
    zip_path = pathlib.Path(zip_path)
    prefix = f"{top_level}/" if top_level else ""
    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + path.relative_to(folder).as_posix())
        for member, data in (extra_members or {}).items():
            archive.writestr(member, data)
    return zip_path


def build_demo_dataset(base, config="cvat", **demo_options):
    """Demo scenes written as a CVAT export to `base / "export"`
    (`full_semantic.demo_data.write_demo_export(..., **demo_options)`) and built with the
    full_semantic `config` (a config name or a `FullSemanticConfig`) into the TFDS
    data dir `base / "tfds"`.

    Returns:
        The prepared `full_semantic` `Builder`.
    """
    from full_semantic.demo_data import write_demo_export
    from full_semantic.prepare import build_dataset

    export = write_demo_export(pathlib.Path(base) / "export", **demo_options)
    return build_dataset(config, export, pathlib.Path(base) / "tfds")
