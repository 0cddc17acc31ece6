"""Reads Cityscapes (and MiniCity, its VIPriors subset) into train-id or category masks.

Kept whole (~420 lines): the Cityscapes label tables and the reader that applies them.

The extracted `leftImg8bit_trainvaltest.zip` and `gtFine_trainvaltest.zip` share one root::

    leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png   # 8-bit RGB
    gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png    # 8-bit label ids 0..33
    gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_polygons.json   # read if no labelIds
    gtFine/.../*_gtFine_{instanceIds,color,labelTrainIds}.png         # not read

MiniCity has the same layout. Every folder under `leftImg8bit/` is a split; the
city level may be absent (files directly in `leftImg8bit/<split>/`). A split
without any annotation (MiniCity's `test`, Cityscapes' `train_extra`) is left out
with a warning.

Label ids map to classes with the official label table (`LABELS`, as in
`cityscapesscripts/helpers/labels.py`): class set `train_ids` gives the 19
evaluated classes (everything else 255), `categories` the 8 categories.
Frames with only polygons are rasterised as `json2labelImg.py` does: objects in
file order, later ones over earlier ones, `deleted` objects and `license plate`
(id -1) skipped, `<name>group` drawn as `<name>` (`cargroup` -> car).

    dataset = open_source(manual_dir, scratch_dir, config)  # config.class_set, void_labels
    for key, example in dataset.examples("val"):
        ...  # {"image": PNG bytes, "mask": PNG bytes of (H, W) ids, "file_name": key}
"""

import collections
import dataclasses
import logging

import numpy as np
from etils import epath

from full_semantic import raster
from full_semantic.class_table import ClassTable
from full_semantic.file_lists import SPLIT_NAME_PATTERN, read_json, walk_files
from full_semantic.source import ExampleReader, Source
from semseg.base.errors import InputError
from semseg.base.labels import IGNORE_INDEX

logger = logging.getLogger(__name__)

IMAGES_DIR = "leftImg8bit"
LABELS_DIR = "gtFine"
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_IDS_SUFFIX = "_gtFine_labelIds.png"
POLYGONS_SUFFIX = "_gtFine_polygons.json"
CLASS_SETS = ("train_ids", "categories")
CHANNELS = (3,)


@dataclasses.dataclass(frozen=True)
class CityscapesLabel:
    """One row of the official Cityscapes label table.

    Attributes:
        name: str, the label name used in the polygon files.
        id: int, the value in `*_gtFine_labelIds.png` (-1: never drawn).
        train_id: int, the evaluated class 0..18, or 255 (-1 for license plate).
        category: str, one of `CATEGORIES`.
        category_id: int, the index of `category` in `CATEGORIES`.
        color: `(r, g, b)`, the colour in `*_gtFine_color.png`.
    """

    name: str
    id: int
    train_id: int
    category: str
    category_id: int
    color: tuple[int, int, int]


LABELS = tuple(
    CityscapesLabel(*row)
    for row in (
        ("unlabeled", 0, 255, "void", 0, (0, 0, 0)),
        ("ego vehicle", 1, 255, "void", 0, (0, 0, 0)),
        ("rectification border", 2, 255, "void", 0, (0, 0, 0)),
        ("out of roi", 3, 255, "void", 0, (0, 0, 0)),
        ("static", 4, 255, "void", 0, (0, 0, 0)),
        ("dynamic", 5, 255, "void", 0, (111, 74, 0)),
        ("ground", 6, 255, "void", 0, (81, 0, 81)),
        ("road", 7, 0, "flat", 1, (128, 64, 128)),
        ("sidewalk", 8, 1, "flat", 1, (244, 35, 232)),
        ("parking", 9, 255, "flat", 1, (250, 170, 160)),
        ("rail track", 10, 255, "flat", 1, (230, 150, 140)),
        ("building", 11, 2, "construction", 2, (70, 70, 70)),
        ("wall", 12, 3, "construction", 2, (102, 102, 156)),
        ("fence", 13, 4, "construction", 2, (190, 153, 153)),
        ("guard rail", 14, 255, "construction", 2, (180, 165, 180)),
        ("bridge", 15, 255, "construction", 2, (150, 100, 100)),
        ("tunnel", 16, 255, "construction", 2, (150, 120, 90)),
        ("pole", 17, 5, "object", 3, (153, 153, 153)),
        ("polegroup", 18, 255, "object", 3, (153, 153, 153)),
        ("traffic light", 19, 6, "object", 3, (250, 170, 30)),
        ("traffic sign", 20, 7, "object", 3, (220, 220, 0)),
        ("vegetation", 21, 8, "nature", 4, (107, 142, 35)),
        ("terrain", 22, 9, "nature", 4, (152, 251, 152)),
        ("sky", 23, 10, "sky", 5, (70, 130, 180)),
        ("person", 24, 11, "human", 6, (220, 20, 60)),
        ("rider", 25, 12, "human", 6, (255, 0, 0)),
        ("car", 26, 13, "vehicle", 7, (0, 0, 142)),
        ("truck", 27, 14, "vehicle", 7, (0, 0, 70)),
        ("bus", 28, 15, "vehicle", 7, (0, 60, 100)),
        ("caravan", 29, 255, "vehicle", 7, (0, 0, 90)),
        ("trailer", 30, 255, "vehicle", 7, (0, 0, 110)),
        ("train", 31, 16, "vehicle", 7, (0, 80, 100)),
        ("motorcycle", 32, 17, "vehicle", 7, (0, 0, 230)),
        ("bicycle", 33, 18, "vehicle", 7, (119, 11, 32)),
        ("license plate", -1, -1, "vehicle", 7, (0, 0, 142)),
    )
)
LABEL_OF_NAME = {label.name: label for label in LABELS}
CATEGORIES = ("void", "flat", "construction", "object", "nature", "sky", "human", "vehicle")
# Label ids that may appear in `*_gtFine_labelIds.png`.
NUM_LABEL_IDS = 34


def class_set_table(class_set):
    """Class names, palette and label id -> class index of a class set.

    Args:
        class_set: `"train_ids"` (19 classes, ordered by train id, official
            colours) or `"categories"` (8 classes; each category gets the colour
            of its first evaluated label, black for `void`).

    Returns:
        `(names, palette, ids)`: lists of str and `(r, g, b)`, and a uint8 array
        `(NUM_LABEL_IDS,)` mapping each label id to a class index or 255.
    """
    ids = np.full(NUM_LABEL_IDS, IGNORE_INDEX, dtype=np.uint8)
    drawn = [label for label in LABELS if label.id >= 0]
    if class_set == "train_ids":
        evaluated = sorted(
            (label for label in drawn if label.train_id != IGNORE_INDEX),
            key=lambda label: label.train_id,
        )
        for label in drawn:
            ids[label.id] = label.train_id
        return [label.name for label in evaluated], [label.color for label in evaluated], ids
    if class_set == "categories":
        palette = []
        for category in CATEGORIES:
            members = [label for label in drawn if label.category == category]
            evaluated = [label for label in members if label.train_id != IGNORE_INDEX]
            palette.append(evaluated[0].color if evaluated else (0, 0, 0))
        for label in drawn:
            ids[label.id] = label.category_id
        return list(CATEGORIES), palette, ids
    raise InputError(f"unknown Cityscapes class_set {class_set!r}; expected one of {CLASS_SETS}.")


@dataclasses.dataclass(frozen=True)
class Frame:
    """The files of one annotated frame.

    Attributes:
        key: str, `<city>_<seq>_<frame>`, the example key and `file_name`.
        image: `epath.Path` of the `*_leftImg8bit.png`.
        label: `epath.Path` of the `*_gtFine_labelIds.png` or, failing that, of
            the `*_gtFine_polygons.json`.
    """

    key: str
    image: epath.Path
    label: epath.Path


def open_source(manual_dir, scratch_dir, config):
    """The `cityscapes` reader: a `CityscapesDataset` (`Source.open`)."""
    del scratch_dir  # Cityscapes is read in place; its zips are extracted by the user.
    return CityscapesDataset(
        manual_dir, class_set=config.class_set or CLASS_SETS[0], void_labels=config.void_labels
    )


class CityscapesDataset(ExampleReader):
    """A validated Cityscapes (or MiniCity) folder.

    Construction lists the files and pairs every image with its annotation;
    `examples` decodes them.

    Args:
        root: path-like, the folder holding `leftImg8bit/` and `gtFine/`.
        class_set: `"train_ids"` or `"categories"`.
        void_labels: sequence of class names (of the class set) mapped to 255.

    Attributes:
        class_names: list of str.
        palette: list of `[r, g, b]`.
        split_names: list of str, the splits with annotations.

    Raises:
        InputError: if a folder is missing, an image has no annotation in a split
            where others have one, or two images share a frame name.
    """

    def __init__(self, root, class_set="train_ids", void_labels=()):
        self.root = epath.Path(root)
        names, palette, self._class_of_label_id = class_set_table(class_set)
        self._table = ClassTable(
            names,
            palette,
            void_labels,
            where=f"Cityscapes class set {class_set!r}",
            ignored_values=(IGNORE_INDEX,),
        )
        self.class_names = self._table.class_names
        self.palette = self._table.palette
        # Label id -> dataset class id, in one lookup.
        self._lookup = self._table.lookup[self._class_of_label_id]
        self.set_examples(self._find_frames())

    def _find_frames(self):
        images_root = self.root / IMAGES_DIR
        labels_root = self.root / LABELS_DIR
        for folder in (images_root, labels_root):
            if not folder.is_dir():
                zips = sorted(path.name for path in self.root.glob("*.zip"))
                hint = f" Extract {', '.join(zips)} into it." if zips else ""
                raise InputError(
                    f"{folder} not found: --manual_dir must be the Cityscapes (or MiniCity) "
                    f"folder holding {IMAGES_DIR}/ and {LABELS_DIR}/.{hint}"
                )
        frames = {}
        for split_dir in sorted(path for path in images_root.iterdir() if path.is_dir()):
            split = split_dir.name
            if not SPLIT_NAME_PATTERN.match(split):
                raise InputError(
                    f"{split_dir}: {split!r} is not a valid split name (letters, digits and "
                    "underscores only)."
                )
            split_frames = self._split_frames(split_dir, labels_root / split)
            if split_frames:
                frames[split] = split_frames
        if not frames:
            raise InputError(
                f"{images_root}: no split folder holds an image with an annotation in "
                f"{labels_root}/ (expected e.g. {IMAGES_DIR}/train/aachen/"
                f"aachen_000000_000019{IMAGE_SUFFIX} with {LABELS_DIR}/train/aachen/"
                f"aachen_000000_000019{LABEL_IDS_SUFFIX})."
            )
        return frames

    def _split_frames(self, split_dir, label_dir):
        """Pairs the images of one split with their annotations."""
        label_files = {
            path.relative_to(label_dir).as_posix(): path for path in walk_files(label_dir)
        }
        frames = []
        image_of_key = {}
        unannotated = []
        skipped = 0
        for image in walk_files(split_dir):
            if not image.name.endswith(IMAGE_SUFFIX):
                skipped += 1
                continue
            key = image.name[: -len(IMAGE_SUFFIX)]
            if key in image_of_key:
                raise InputError(
                    f"{image} and {image_of_key[key]}: two images with the same key {key!r}; "
                    "keep one file per frame."
                )
            image_of_key[key] = image
            relative_dir = image.parent.relative_to(split_dir).as_posix()
            prefix = "" if relative_dir == "." else f"{relative_dir}/"
            label = label_files.get(f"{prefix}{key}{LABEL_IDS_SUFFIX}") or label_files.get(
                f"{prefix}{key}{POLYGONS_SUFFIX}"
            )
            if label is None:
                unannotated.append(image)
                continue
            frames.append(Frame(key=key, image=image, label=label))
        if skipped:
            logger.warning("%s: skipped %d file(s) not named *%s", split_dir, skipped, IMAGE_SUFFIX)
        if unannotated and frames:
            first = unannotated[0]
            relative = first.parent.relative_to(split_dir).as_posix()
            expected = label_dir / relative / first.name.replace(IMAGE_SUFFIX, LABEL_IDS_SUFFIX)
            raise InputError(
                f"{first}: no annotation ({expected} or *{POLYGONS_SUFFIX}); "
                f"{len(unannotated)} of {len(unannotated) + len(frames)} images of split "
                f"{split_dir.name!r} have none."
            )
        if unannotated:
            logger.warning(
                "split %r left out: none of its %d images has an annotation in %s",
                split_dir.name,
                len(unannotated),
                label_dir,
            )
        return frames

    def read(self, frame):
        """Decodes one frame (a `Frame` of `items(split)`).

        Returns:
            `(key, example)`: key is `<city>_<seq>_<frame>`; example holds `image`
            (the PNG bytes, or a uint8 `(H, W, 3)` array if it had to be
            converted), `mask` (PNG bytes of uint8 `(H, W)` class ids) and
            `file_name` (the key).

        Raises:
            InputError: for an unreadable, 16-bit or wrong-channel file, a label id
                outside 0..33, a malformed polygon file, or sizes that differ.
        """
        return self.key(frame), self._read_frame(frame)

    def key(self, frame):
        """The key of `read(frame)`: `<city>_<seq>_<frame>`."""
        return frame.key

    def _read_frame(self, frame):
        image, image_size = raster.image_feature(frame.image.read_bytes(), 3, str(frame.image))
        if frame.label.name.endswith(POLYGONS_SUFFIX):
            label_ids, label_size = rasterize_polygons(frame.label)
        else:
            label_ids, label_size = raster.read_index_image(
                frame.label.read_bytes(), str(frame.label), what="Cityscapes label ids"
            )
        raster.check_size(label_size, image_size, str(frame.label), str(frame.image))
        unknown = label_ids >= NUM_LABEL_IDS
        if unknown.any():
            values, counts = np.unique(label_ids[unknown], return_counts=True)
            raise InputError(
                f"{frame.label}: {len(values)} label id(s) outside the Cityscapes label table "
                f"(0..{NUM_LABEL_IDS - 1}): {raster.value_counts_text(values, counts)}."
            )
        return {
            "image": image,
            "mask": raster.encode_png(self._lookup[label_ids]),
            "file_name": frame.key,
        }


def _polygon_error(path, index, problem):
    return InputError(f"{path}: object {index}: {problem}")


def rasterize_polygons(path):
    """Draws a `*_gtFine_polygons.json` into label ids, as `json2labelImg.py` does.

    Args:
        path: path-like, the polygon file.

    Returns:
        `(label_ids, (width, height))`: uint8 `(imgHeight, imgWidth)`, 0
        (`unlabeled`) where no object is drawn.

    Raises:
        InputError: if the file is not JSON, misses `imgWidth`, `imgHeight` or
            `objects`, or an object has an unknown label or a malformed polygon.
    """
    path = epath.Path(path)
    annotation = read_json(path)
    if not isinstance(annotation, dict) or not {"imgWidth", "imgHeight", "objects"} <= set(
        annotation
    ):
        raise InputError(
            f"{path}: expected a Cityscapes polygon file, a JSON object with imgWidth, "
            "imgHeight and objects."
        )
    try:
        size = (int(annotation["imgWidth"]), int(annotation["imgHeight"]))
    except (TypeError, ValueError):
        size = (0, 0)
    if min(size) < 1 or not isinstance(annotation["objects"], list):
        raise InputError(
            f"{path}: imgWidth and imgHeight must be positive integers and objects a list. "
            f"Received: imgWidth={annotation['imgWidth']!r}, imgHeight={annotation['imgHeight']!r}"
        )
    polygons = []
    unknown_labels = collections.Counter()
    for index, item in enumerate(annotation["objects"]):
        if not isinstance(item, dict) or "label" not in item or "polygon" not in item:
            raise _polygon_error(path, index, "expected an object with label and polygon.")
        if item.get("deleted"):
            continue
        name = str(item["label"])
        if name not in LABEL_OF_NAME and name.endswith("group"):
            name = name[: -len("group")]
        label = LABEL_OF_NAME.get(name)
        if label is None:
            unknown_labels[str(item["label"])] += 1
            continue
        if label.id < 0:
            continue
        try:
            points = np.asarray(item["polygon"], dtype=np.float64)
        except (TypeError, ValueError):
            points = np.zeros((1, 3))
        if points.size == 0:
            continue
        if points.ndim != 2 or points.shape[1] != 2:
            raise _polygon_error(
                path,
                index,
                f"polygon must be a list of [x, y] pairs. Received: {item['polygon']!r}",
            )
        if not np.isfinite(points).all():
            raise _polygon_error(path, index, "polygon has non-finite coordinates.")
        polygons.append((points, label.id))
    if unknown_labels:
        shown = ", ".join(f"{name!r} ({count}x)" for name, count in unknown_labels.most_common())
        raise InputError(
            f"{path}: label(s) not in the Cityscapes label table: {shown}; expected names such "
            "as 'road', 'car' or 'cargroup'."
        )
    return raster.draw_polygons(size, polygons, background=LABEL_OF_NAME["unlabeled"].id), size


# What --manual_dir must be, for messages, and the TFDS homepage.
MANUAL_DIR = "the Cityscapes (or MiniCity) folder holding leftImg8bit/ and gtFine/"
HOMEPAGE = "https://www.cityscapes-dataset.com/"
SOURCE = Source(
    "cityscapes", open_source, MANUAL_DIR, HOMEPAGE, channels=CHANNELS, class_sets=CLASS_SETS
)
