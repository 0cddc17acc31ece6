"""Writes tiny Cityscapes, UTokyo, AIHub satellite and plain-folder datasets for tests.

The files follow what real releases hold (see ../shared/data/README.md):

*   Cityscapes: `leftImg8bit/<split>/<city>/*_leftImg8bit.png` (8-bit RGB) and,
    in `gtFine/`, 8-bit `labelIds`, `labelTrainIds`, 16-bit `instanceIds`
    (id * 1000 + instance), RGBA `color` PNGs and `polygons` JSON per frame.
*   UTokyo: `images/NAME.png` with 4 uint8 channels that PIL reads as RGBA
    (the 4th is thermal), `labels/NAME.png` 8-bit, `train.txt`... lists.
*   Satellite: GeoJSON FeatureCollections with `building_imcoords` /
    `road_imcoords` strings or `EMPTY`, plus `image_id`, `type_id`, `type_name`.

    from source_fixtures import write_cityscapes, write_utokyo, write_satellite, write_folder

    write_cityscapes(tmp_path / "cityscapes", polygons_only=["bochum_000000_000313"])
    write_utokyo(tmp_path / "ir_seg_dataset")

`full_semantic/dummy_data/<source>/` was written with
`write_dummy_data("full_semantic/dummy_data")`. `open_source` and `read_masks` read a
written dataset back as the builder does.
"""

import io
import json
import os
import pathlib
import zlib

import numpy as np
import tensorflow_datasets as tfds
from cvat_fixtures import write_cvat_export, zip_folder
from PIL import Image

# Official Cityscapes label id -> train id of the 19 evaluated classes (others: 255),
# written out here independently of the reader's table.
CITYSCAPES_TRAIN_IDS = {
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
}
# Label id -> category id (void 0, flat 1, construction 2, object 3, nature 4, sky 5,
# human 6, vehicle 7).
CITYSCAPES_CATEGORY_IDS = {
    **{label_id: 0 for label_id in range(0, 7)},
    **{label_id: 1 for label_id in range(7, 11)},
    **{label_id: 2 for label_id in range(11, 17)},
    **{label_id: 3 for label_id in range(17, 21)},
    **{label_id: 4 for label_id in (21, 22)},
    23: 5,
    24: 6,
    25: 6,
    **{label_id: 7 for label_id in range(26, 34)},
}
CITYSCAPES_FRAMES = {
    "train": ("aachen_000000_000019", "bochum_000000_000313"),
    "val": ("frankfurt_000000_000294",),
}
UTOKYO_SPLITS = {"train": ("00001D", "00002N"), "val": ("00003D",), "test": ("00004N",)}
UTOKYO_NUM_CLASSES = 9


def pattern_image(name, size, channels=3):
    """Deterministic uint8 `(height, width, channels)` pixels for a name; size is `(w, h)`."""
    width, height = size
    generator = np.random.default_rng(zlib.crc32(name.encode()))
    return generator.integers(0, 256, size=(height, width, channels), dtype=np.uint8)


def id_pattern(size, modulo, step=2):
    """uint8 `(height, width)` array `(x + step * y) % modulo`; size is `(w, h)`."""
    width, height = size
    rows, columns = np.mgrid[0:height, 0:width]
    return ((columns + step * rows) % modulo).astype(np.uint8)


def save_png(path, array, mode=None):
    """Writes an array as PNG (creating folders); `mode` forces a PIL mode, e.g. `"I;16"`."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array, mode=mode) if mode else Image.fromarray(array)
    image.save(path, format="PNG")
    return path


def rectangle(x0, y0, x1, y1):
    """The 4 corners of an axis-aligned rectangle as `[[x, y], ...]`."""
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def cityscapes_label_ids(size):
    """The `labelIds` pattern of every fixture frame: `(x + 3y) % 34`, all 34 ids."""
    return id_pattern(size, 34, step=3)


# Objects of a polygons-only frame of 16x8 pixels, in drawing order.
CITYSCAPES_POLYGONS = (
    {"label": "sky", "polygon": rectangle(0, 0, 15, 7)},
    {"label": "road", "polygon": rectangle(0, 4, 15, 7)},
    {"label": "cargroup", "polygon": rectangle(2, 3, 9, 6)},
    {"label": "license plate", "polygon": rectangle(4, 5, 5, 6)},
    {"label": "person", "polygon": rectangle(12, 1, 14, 6), "deleted": 1},
    {"label": "out of roi", "polygon": rectangle(0, 0, 1, 1)},
    {"label": "bicycle", "polygon": rectangle(10, 5, 13, 7)},
)


def write_cityscapes(
    root,
    frames=None,
    *,
    image_size=(16, 8),
    polygons_only=(),
    city_folders=True,
    unlabelled_splits=None,
    label_ids=None,
    polygons=CITYSCAPES_POLYGONS,
):
    """Writes a Cityscapes-like folder (MiniCity has the same layout).

    Args:
        root: path-like, the folder to create (holding `leftImg8bit/`, `gtFine/`).
        frames: mapping split -> frame names `<city>_<seq>_<frame>`; defaults to
            `CITYSCAPES_FRAMES`.
        image_size: `(width, height)`.
        polygons_only: frame names written with a polygons JSON only (drawn from
            `polygons`), no PNG annotation.
        city_folders: bool, put files under `<split>/<city>/` (else `<split>/`).
        unlabelled_splits: mapping split -> frame names written as images only
            (no `gtFine/` at all), like MiniCity's test split.
        label_ids: optional mapping frame -> uint8 `(H, W)` array (or any array
            PIL saves) written as that frame's `labelIds` instead of the pattern.
        polygons: objects of the polygons-only frames.

    Returns:
        `pathlib.Path` of `root`.
    """
    root = pathlib.Path(root)
    frames = CITYSCAPES_FRAMES if frames is None else frames
    label_ids = dict(label_ids or {})
    width, height = image_size
    train_lookup = np.full(256, 255, dtype=np.uint8)
    for label_id, train_id in CITYSCAPES_TRAIN_IDS.items():
        train_lookup[label_id] = train_id

    def folder(kind, split, frame):
        city = frame.split("_")[0]
        return root / kind / split / city if city_folders else root / kind / split

    for split, names in (unlabelled_splits or {}).items():
        for frame in names:
            save_png(
                folder("leftImg8bit", split, frame) / f"{frame}_leftImg8bit.png",
                pattern_image(frame, image_size),
            )
    for split, names in frames.items():
        for frame in names:
            save_png(
                folder("leftImg8bit", split, frame) / f"{frame}_leftImg8bit.png",
                pattern_image(frame, image_size),
            )
            gt = folder("gtFine", split, frame)
            gt.mkdir(parents=True, exist_ok=True)
            if frame in polygons_only:
                annotation = {"imgHeight": height, "imgWidth": width, "objects": list(polygons)}
                (gt / f"{frame}_gtFine_polygons.json").write_text(json.dumps(annotation))
                continue
            ids = label_ids.get(frame, cityscapes_label_ids(image_size))
            save_png(gt / f"{frame}_gtFine_labelIds.png", ids)
            if np.asarray(ids).dtype == np.uint8 and np.asarray(ids).ndim == 2:
                save_png(gt / f"{frame}_gtFine_labelTrainIds.png", train_lookup[ids])
                instance_ids = ids.astype(np.uint16)
                has_instances = ids >= 24
                instance_ids[has_instances] = instance_ids[has_instances] * 1000 + 1
                save_png(gt / f"{frame}_gtFine_instanceIds.png", instance_ids, mode="I;16")
                color = np.stack(
                    [ids * 7, ids * 3, ids * 5, np.full_like(ids, 255)], axis=-1
                ).astype(np.uint8)
                save_png(gt / f"{frame}_gtFine_color.png", color)
            # Real frames always have polygons too; these disagree with labelIds on
            # purpose, so tests see which annotation was read.
            annotation = {
                "imgHeight": height,
                "imgWidth": width,
                "objects": [{"label": "road", "polygon": rectangle(0, 0, width - 1, height - 1)}],
            }
            (gt / f"{frame}_gtFine_polygons.json").write_text(json.dumps(annotation))
    return root


def utokyo_image(name, size):
    """The RGBT pixels of UTokyo fixture image `name`: uint8 `(h, w, 4)`, 4th = thermal."""
    return pattern_image(name, size, channels=4)


def write_utokyo(
    root,
    splits=None,
    *,
    image_size=(20, 12),
    images=None,
    labels=None,
    omit_labels=(),
    list_lines=None,
):
    """Writes a UTokyo multispectral release (the `ir_seg_dataset/` folder).

    Args:
        root: path-like, the folder to create.
        splits: mapping split -> names; defaults to `UTOKYO_SPLITS`. Written as
            `train.txt`, `val.txt`, `test.txt` at the root.
        image_size: `(width, height)`.
        images: optional mapping name -> array written as `images/NAME.png`
            instead of `utokyo_image` (e.g. a 3-channel or 16-bit image).
        labels: optional mapping name -> array written as `labels/NAME.png`
            instead of `id_pattern(size, 9)`.
        omit_labels: names written without a label file.
        list_lines: optional mapping list file name -> raw text, written as is.

    Returns:
        `pathlib.Path` of `root`.
    """
    root = pathlib.Path(root)
    splits = UTOKYO_SPLITS if splits is None else splits
    images = dict(images or {})
    labels = dict(labels or {})
    root.mkdir(parents=True, exist_ok=True)
    for split, names in splits.items():
        (root / f"{split}.txt").write_text("".join(f"{name}\n" for name in names))
        for name in names:
            image = images.get(name, utokyo_image(name, image_size))
            mode = "I;16" if np.asarray(image).dtype == np.uint16 else None
            save_png(root / "images" / f"{name}.png", image, mode=mode)
            if name not in omit_labels:
                label = labels.get(name, id_pattern(image_size, UTOKYO_NUM_CLASSES))
                save_png(root / "labels" / f"{name}.png", label)
    for list_name, text in (list_lines or {}).items():
        (root / list_name).write_text(text)
    return root


def building_feature(image_name, building="EMPTY", road="EMPTY", **extra):
    """One AIHub GeoJSON feature with the given coordinate strings (or `EMPTY`)."""
    properties = {
        "building_imcoords": building,
        "road_imcoords": road,
        "object_imcoords": "EMPTY",
        "image_id": image_name,
        "type_id": "1",
        "type_name": "building",
        **extra,
    }
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [[[127.0, 37.5], [127.1, 37.5]]]},
        "properties": properties,
    }


def coords(points):
    """`'x,y,x,y,...'` for `[(x, y), ...]`, numbers written as given (e.g. -2.8e-14)."""
    return ",".join(f"{x!r},{y!r}" for x, y in points)


def write_satellite(root, tiles, *, image_size=(16, 12), splits=None, raw_labels=None):
    """Writes an AIHub satellite folder.

    Args:
        root: path-like, the folder to create.
        tiles: mapping image stem -> `{"building": features or None, "road":
            features or None}`; None (or a missing key) writes no label file.
        image_size: `(width, height)` of every tile.
        splits: optional mapping split -> stems, written to `splits/<split>.txt`.
        raw_labels: optional mapping relative path -> text written as is (for
            malformed files).

    Returns:
        `pathlib.Path` of `root`.
    """
    root = pathlib.Path(root)
    for stem, layers in tiles.items():
        save_png(root / "images" / f"{stem}.png", pattern_image(stem, image_size))
        for layer in ("building", "road"):
            features = layers.get(layer)
            if features is None:
                continue
            path = root / "labels" / layer / f"{stem}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    for split, stems in (splits or {}).items():
        path = root / "splits" / f"{split}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{stem}\n" for stem in stems))
    for relative, text in (raw_labels or {}).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


FOLDER_CLASSES = (
    {"name": "background", "color": [0, 0, 0]},
    {"name": "road", "color": [128, 64, 128]},
    {"name": "car", "color": [64, 0, 128]},
)
FOLDER_SPLITS = {"train": ("a", "b"), "val": ("c",)}


def write_folder(
    root,
    classes=FOLDER_CLASSES,
    splits=FOLDER_SPLITS,
    *,
    image_size=(12, 8),
    channels=3,
    image_extension=".jpg",
    labels=None,
    images=None,
    omit_labels=(),
    classes_json=None,
):
    """Writes a plain dataset folder: classes.json, images/, labels/, splits/.

    Args:
        root: path-like, the folder to create.
        classes: the `classes.json` list.
        splits: mapping split -> names (written to `splits/`), or None for no
            `splits/` folder (the names are then those of `images`, or a b c).
        image_size: `(width, height)`.
        channels: 1, 3 or 4, channels of the generated images.
        image_extension: `.jpg` or `.png` (4-channel images are always PNG).
        labels: optional mapping name -> array written as `labels/NAME.png`
            instead of `id_pattern(size, len(classes))`.
        images: optional mapping name -> array written as the image instead.
        omit_labels: names written without a label.
        classes_json: optional object written as `classes.json` instead of `classes`.

    Returns:
        `pathlib.Path` of `root`.
    """
    root = pathlib.Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.json").write_text(
        json.dumps(classes if classes_json is None else classes_json)
    )
    names = (
        list(dict.fromkeys(name for names in splits.values() for name in names))
        if splits
        else ["a", "b", "c"]
    )
    for split, split_names in (splits or {}).items():
        path = root / "splits" / f"{split}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{name}\n" for name in split_names))
    labels = dict(labels or {})
    images = dict(images or {})
    extension = ".png" if channels == 4 else image_extension
    for name in names:
        pixels = images.get(name, pattern_image(name, image_size, channels))
        if pixels.ndim == 3 and pixels.shape[-1] == 1:
            pixels = pixels[..., 0]
        image_path = root / "images" / f"{name}{extension}"
        image_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(image_path)
        if name not in omit_labels:
            save_png(
                root / "labels" / f"{name}.png",
                labels.get(name, id_pattern(image_size, len(classes))),
            )
    return root


# Satellite tiles of the dummy data and of tests: 16x12 pixels.
SATELLITE_TILES = {
    "BLD00001_PS3_K3A_NIA0001": {
        "building": [
            building_feature(
                "BLD00001_PS3_K3A_NIA0001.png",
                building=coords([(-2.8e-14, -2.8e-14), (6, 0), (6, 5), (0, 5)]),
            ),
            building_feature(
                "BLD00001_PS3_K3A_NIA0001.png",
                building=coords([(10, 6), (1030.5, 6), (1030.5, 40), (10, 40)]),
            ),
        ],
        "road": [
            building_feature(
                "BLD00001_PS3_K3A_NIA0001.png",
                road=coords([(-20, 4), (20, 4), (20, 7), (-20, 7)]),
                type_name="road",
            ),
        ],
    },
    "BLD00002_PS3_K3A_NIA0002": {
        "building": [building_feature("BLD00002_PS3_K3A_NIA0002.png")],
    },
    "BLD00003_PS3_K3A_NIA0003": {
        "road": [
            building_feature(
                "BLD00003_PS3_K3A_NIA0003.png",
                road=coords([(2, 2), (5, 2), (5, 9), (2, 9)]),
            )
        ],
    },
}


def write_dummy_data(root):
    """Writes `full_semantic/dummy_data/`: one subfolder per source, tiny files."""
    root = pathlib.Path(root)
    write_cvat_export(root / "cvat", image_extensions={"b": ".png"})
    write_cityscapes(
        root / "cityscapes",
        polygons_only=["bochum_000000_000313"],
        unlabelled_splits={"test": ["berlin_000000_000019"]},
    )
    write_utokyo(root / "utokyo")
    write_satellite(
        root / "satellite",
        SATELLITE_TILES,
        splits={
            "train": ["BLD00001_PS3_K3A_NIA0001", "BLD00002_PS3_K3A_NIA0002"],
            "val": ["BLD00003_PS3_K3A_NIA0003"],
        },
    )
    write_folder(root / "folder", image_extension=".png")
    return root


def examples_by_name(builder, split):
    """`{file_name: example}` of a built split, as numpy arrays."""
    return {
        example["file_name"].decode(): example
        for example in tfds.as_numpy(builder.as_dataset(split=split))
    }


# The original project's rgb/ + gt/ layout (full_semantic/rgb_gt.py).
ORIGINAL_SIZE = (10, 6)  # width, height


def mask_of(index):
    mask = np.zeros(ORIGINAL_SIZE[::-1], np.uint8)
    mask[:, : ORIGINAL_SIZE[0] // 2] = 1
    mask[0, 0] = index % 3
    return mask


def write_original(root, count=12, masks=None, suffixes=("_mask", "_output")):
    """rgb/image_N.png with gt/image_N_mask.png or gt/image_N_output.png (N = 1..count)."""
    (root / "rgb").mkdir(parents=True)
    (root / "gt").mkdir()
    for index in range(1, count + 1):
        image = np.full((*ORIGINAL_SIZE[::-1], 3), index * 10, np.uint8)
        Image.fromarray(image).save(root / "rgb" / f"image_{index}.png")
        mask = masks[index] if masks else mask_of(index)
        suffix = suffixes[index % len(suffixes)]
        Image.fromarray(mask).save(root / "gt" / f"image_{index}{suffix}.png")
    return root


def new_user_environment(tmp_path, count):
    """`os.environ` of a new user whose HOME holds only `write_original`'s layout (`count`
    images) as `~/tensorflow_datasets/downloads/manual/full_semantic.zip`."""
    home = pathlib.Path(tmp_path) / "home"
    manual = home / "tensorflow_datasets" / "downloads" / "manual"
    manual.mkdir(parents=True)
    zip_folder(
        write_original(pathlib.Path(tmp_path) / "src", count=count), manual / "full_semantic.zip"
    )
    env = {key: value for key, value in os.environ.items() if key != "TFDS_DATA_DIR"}
    env["HOME"] = str(home)
    return env


def open_source(source, root, **options):
    """The reader of `source` (a key of `full_semantic.config.SOURCES`) on the dataset
    folder `root`, with a config named `test` of `options`; scratch files beside `root`."""
    from full_semantic.config import SOURCES, FullSemanticConfig

    config = FullSemanticConfig(name="test", source=source, **options)
    return SOURCES[source].open(root, root.parent / "scratch", config)


def read_masks(dataset, split):
    """`{key: mask}` of a split of an opened source, each PNG decoded."""
    return {
        key: np.asarray(Image.open(io.BytesIO(example["mask"])))
        for key, example in dataset.examples(split)
    }
