"""Reads AIHub satellite building/road labels: GeoJSON polygons in pixel coordinates.

The folder (or a `.zip` of it)::

    images/NAME.png               # 1024x1024 8-bit RGB tiles (.png .jpg .tif also read)
    labels/building/NAME.json     # GeoJSON FeatureCollection of the tile's buildings
    labels/road/NAME.json         # GeoJSON FeatureCollection of its roads
    splits/train.txt              # optional: image NAMEs per split (also val.txt, test.txt)

Either label file may be missing for a tile (no building, or no road). Each
feature's `properties` holds `building_imcoords` and `road_imcoords`, strings
`"x,y,x,y,..."` in pixel coordinates or `"EMPTY"`; `object_imcoords`, `type_id`
and `type_name` are not read. When `properties.image_id` is present it must
name the tile the file belongs to.

Classes: background 0, building 1, road 2. Buildings are drawn first, then roads
over them (as the seed project did). Coordinates outside the tile are clipped,
so values such as -2.8e-14 or 1024.5 are fine. Without `splits/`, every image
goes to `train`.

    dataset = open_source(manual_dir, scratch_dir, config)
    for key, example in dataset.examples("train"):
        ...  # {"image", "mask": PNG bytes of (H, W) ids, "file_name": NAME}
"""

import math

import numpy as np
from etils import epath

from full_semantic import archives, raster
from full_semantic.file_lists import index_files, read_json
from full_semantic.source import Source, SourceDataset
from semseg.base.errors import InputError

IMAGES_DIR = "images"
LABELS_DIR = "labels"
SPLITS_DIR = "splits"
DATASET_DESCRIPTION = "an AIHub satellite folder (images/, labels/building/, labels/road/)"
CLASS_NAMES = ("background", "building", "road")
PALETTE = ((0, 0, 0), (255, 0, 0), (0, 0, 255))
CHANNELS = (3,)
# Label folder, the property read from its features, and the class it draws,
# in drawing order: roads are drawn over buildings.
LAYERS = (("building", "building_imcoords", 1), ("road", "road_imcoords", 2))
EMPTY = "EMPTY"


def parse_imcoords(text, where):
    """Parses an `"x,y,x,y,..."` coordinate string into points.

    Args:
        text: str, the property value (`"EMPTY"` or blank means no polygon).
        where: str naming the file, feature and property in messages.

    Returns:
        float64 array `(N, 2)` of `(x, y)`, or None for `"EMPTY"`.

    Raises:
        InputError: if the value is not a string, a value is not a finite
            number, or the number of values is odd.
    """
    if not isinstance(text, str):
        raise InputError(
            f"{where}: expected a string 'x,y,x,y,...' or 'EMPTY'. Received: {text!r:.80}"
        )
    text = text.strip()
    if not text or text.upper() == EMPTY:
        return None
    parts = [part.strip() for part in text.split(",")]
    values = []
    for position, part in enumerate(parts):
        try:
            value = float(part)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise InputError(
                f"{where}: value {position + 1} ({part!r}) is not a number; expected "
                "'x,y,x,y,...' in pixels."
            )
        values.append(value)
    if len(values) % 2:
        raise InputError(
            f"{where}: {len(values)} values, an odd number; expected x,y pairs 'x,y,x,y,...'."
        )
    return np.asarray(values, dtype=np.float64).reshape(-1, 2)


def read_label_file(path, image_name, describe=str):
    """Reads the polygons of one GeoJSON label file.

    Args:
        path: path-like, the `.json` file.
        image_name: str, the file name of the tile (checked against `image_id`).
        describe: callable naming a path in messages.

    Returns:
        dict property name -> list of float64 `(N, 2)` polygons, for the
        properties of `LAYERS`.

    Raises:
        InputError: if the file is not JSON, has no `features` list, a feature
            has no `properties` object, `image_id` names another tile, or a
            coordinate string is malformed.
    """
    path = epath.Path(path)
    where = describe(path)
    collection = read_json(path, describe)
    if not isinstance(collection, dict) or not isinstance(collection.get("features"), list):
        raise InputError(
            f"{where}: no 'features' list; expected a GeoJSON FeatureCollection "
            '{"type": "FeatureCollection", "features": [...]}.'
        )
    polygons = {name: [] for _, name, _ in LAYERS}
    image_stem = image_name.rsplit(".", 1)[0]
    for index, feature in enumerate(collection["features"]):
        properties = feature.get("properties") if isinstance(feature, dict) else None
        if not isinstance(properties, dict):
            raise InputError(f"{where}: feature {index} has no 'properties' object.")
        image_id = properties.get("image_id")
        if image_id is not None and str(image_id).rsplit(".", 1)[0] != image_stem:
            raise InputError(
                f"{where}: feature {index} has image_id {image_id!r}, but the file belongs to "
                f"image {image_name!r}; label files must be named after their image."
            )
        for name in polygons:
            if name in properties:
                points = parse_imcoords(
                    properties[name], f"{where}: feature {index}: properties.{name}"
                )
                if points is not None:
                    polygons[name].append(points)
    return polygons


def open_source(manual_dir, scratch_dir, config):
    """The `satellite` reader: a `SatelliteDataset` (`Source.open`)."""
    root, zip_path = archives.locate_root(
        manual_dir, scratch_dir, IMAGES_DIR, DATASET_DESCRIPTION, read=(LABELS_DIR, SPLITS_DIR)
    )
    return SatelliteDataset(root, void_labels=config.void_labels, zip_path=zip_path)


class SatelliteDataset(SourceDataset):
    """A validated AIHub satellite building/road folder.

    Args:
        root: path-like, the folder holding `images/` and `labels/`.

    `void_labels`, `zip_path` and the attributes: see `SourceDataset`.

    Raises:
        InputError: if there is no image, a split list names a missing image,
            two images or two label files share a name, or a void label is unknown.
    """

    def __init__(self, root, void_labels=(), zip_path=None):
        super().__init__(root, zip_path)
        self.set_classes(
            CLASS_NAMES, PALETTE, void_labels, f"satellite classes {list(CLASS_NAMES)}"
        )
        images = self.index_images(IMAGES_DIR)
        self._label_files = {
            folder: index_files(
                self.root / LABELS_DIR / folder, (".json",), self._describe, "label"
            )
            for folder, _, _ in LAYERS
        }
        for folder, files in self._label_files.items():
            self.warn_orphans(
                files,
                images,
                f"label file(s) in {LABELS_DIR}/{folder}/ have no image in {IMAGES_DIR}/",
            )
        listed = self.listed_splits(SPLITS_DIR, images, IMAGES_DIR)
        self.set_examples(listed if listed is not None else {"train": list(images.items())})

    def read(self, item):
        """Decodes one example; `item` is `(key, image path)` of `items(split)`.

        Returns:
            `(key, example)`: key is the image name without extension; example
            holds `image` (the JPEG/PNG bytes, or a uint8 `(H, W, 3)` array),
            `mask` (PNG bytes of uint8 `(H, W)` class ids) and `file_name`.

        Raises:
            InputError: for a corrupt or 16-bit image or a malformed label file.
        """
        key, image_path = item
        image, size = raster.image_feature(image_path.read_bytes(), 3, self._describe(image_path))
        polygons = []
        layers = {}
        for folder, _, _ in LAYERS:
            label_path = self._label_files[folder].get(key)
            if label_path is not None:
                layers[folder] = read_label_file(label_path, image_path.name, self._describe)
        for _, name, class_id in LAYERS:
            for folder_polygons in layers.values():
                polygons.extend((points, class_id) for points in folder_polygons[name])
        raw_ids = raster.draw_polygons(size, polygons, background=0)
        return self.example(key, image, raw_ids, self._describe(image_path))


# What --manual_dir must be, for messages, and the TFDS homepage.
MANUAL_DIR = "the satellite folder (images/, labels/building/, labels/road/) or a .zip of it"
HOMEPAGE = "https://www.aihub.or.kr/"
SOURCE = Source("satellite", open_source, MANUAL_DIR, HOMEPAGE, channels=CHANNELS)
