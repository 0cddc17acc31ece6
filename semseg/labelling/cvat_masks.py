"""Predicted masks as a CVAT "Segmentation mask 1.1" annotation archive (pre-annotations).

CVAT's Upload annotations (and Datumaro's `voc` importer, which CVAT uses) take a zip of

    labelmap.txt                         background:0,0,0:: then one line per class
    ImageSets/Segmentation/default.txt   the image names, without extension
    SegmentationClass/NAME.png           each pixel in its class colour
    SegmentationObject/NAME.png          each object in its own colour (VOC colour map)

    with CvatMaskArchive("pre.zip", labels, min_area=64) as archive:
        archive.add("frame_0001", class_ids)   # uint8 (H, W) ids of `labels`

One object is one connected region of one class (8-connected): CVAT imports each as one
mask shape, so an object is never merged with another across a hole, nor split into
fragments. Regions smaller than `min_area` pixels become background, in both masks.
Pixels of `IGNORE_INDEX` (and of a class named `background` coloured black) are
background. The archive is written under a temporary name and renamed when complete.
"""

import logging
import os
import zipfile
from pathlib import Path

import cv2
import numpy as np

from full_semantic import cvat
from full_semantic.cvat_writer import ExportWriter
from semseg.base.errors import InputError
from semseg.base.files import temporary_sibling
from semseg.base.labels import IGNORE_INDEX, default_palette

logger = logging.getLogger(__name__)

BACKGROUND = "background"
BACKGROUND_COLOR = (0, 0, 0)
# Datumaro reads SegmentationObject/ with the 256-entry VOC colour map: index 0 is the
# background, so an image holds at most 255 objects.
MAX_OBJECTS = 255
_INSTANCE_COLORS = np.array(default_palette(MAX_OBJECTS + 1), dtype=np.uint8)


def cvat_classes(labels):
    """The labelmap of a run's classes: `(names, colors, background_id)`.

    `names` and `colors` are the classes other than background, each with a unique
    colour that is not black (a class coloured black or like another gets the first
    free VOC colour); `background_id` is the id of a class named `background` and
    coloured black, which CVAT's own background label stands for, or None.

    Raises:
        InputError: for a class name that `labelmap.txt` cannot hold (`:` or a line break).
    """
    background_id = None
    for class_id, (name, color) in enumerate(zip(labels.class_names, labels.palette)):
        if name.lower() == BACKGROUND and tuple(color) == BACKGROUND_COLOR:
            background_id = class_id
        if ":" in name or "\n" in name or not name.strip():
            raise InputError(
                f"class name {name!r} cannot be written to labelmap.txt (no ':' or line "
                "breaks); rename it in the dataset"
            )
    used = {BACKGROUND_COLOR}
    spare = (tuple(color) for color in default_palette(1024)[1:])
    colors = {}
    for class_id, color in enumerate(labels.palette):
        if class_id == background_id:
            continue
        color = tuple(int(channel) for channel in color)
        while color in used:
            color = next(spare)
        used.add(color)
        colors[class_id] = color
    return colors, background_id


def labelmap_text(labels):
    """The `labelmap.txt` of a run's classes (see `cvat_classes`)."""
    colors, _ = cvat_classes(labels)
    classes = [(BACKGROUND, BACKGROUND_COLOR)]
    classes += [(labels.class_names[class_id], color) for class_id, color in colors.items()]
    return cvat.format_labelmap(classes, header=False)


def regions(class_ids, background_id=None):
    """The connected regions (8-connected) of every class but background, largest first.

    Returns:
        list of `(area, class_id, box, bitmap)`: box `(left, top, width, height)` and
        bitmap the region's bool pixels inside its box.
    """
    found = []
    for class_id, labels, stats in _components(class_ids, background_id):
        for label in range(1, len(stats)):
            left, top, width, height, area = (int(value) for value in stats[label])
            bitmap = labels[top : top + height, left : left + width] == label
            found.append((area, class_id, (left, top, width, height), bitmap))
    found.sort(key=lambda region: -region[0])
    return found


def _components(class_ids, background_id):
    """`(class_id, region labels (H, W), stats)` of each class present but background and ignore."""
    class_ids = np.asarray(class_ids, dtype=np.uint8)
    for class_id in np.unique(class_ids).tolist():
        if class_id in (IGNORE_INDEX, background_id):
            continue
        _, labels, stats, _ = cv2.connectedComponentsWithStats(
            (class_ids == class_id).astype(np.uint8), connectivity=8
        )
        yield class_id, labels, stats


def objects(class_ids, min_area=0, background_id=None):
    """Splits a class mask into objects: one per connected region (8-connected) per class.

    Args:
        class_ids: uint8 `(H, W)` class ids (`IGNORE_INDEX` for none).
        min_area: int, regions of fewer pixels are dropped.
        background_id: the id of the background class (no objects), or None.

    Returns:
        `(instances, kept_ids)`: int32 `(H, W)` object numbers 1..N (0: background), the
        largest object first, and `class_ids` with dropped regions set to `IGNORE_INDEX`.
        At most `MAX_OBJECTS` objects are kept (the largest); the others are dropped
        with a warning.
    """
    class_ids = np.asarray(class_ids, dtype=np.uint8)
    components = {}  # class id -> int32 (H, W) region labels (0: not this class)
    found = []  # (area, class id, region label)
    for class_id, labels, stats in _components(class_ids, background_id):
        components[class_id] = labels
        found += [
            (int(stats[label, cv2.CC_STAT_AREA]), class_id, label) for label in range(1, len(stats))
        ]
    found.sort(key=lambda region: -region[0])
    numbers = {
        class_id: np.zeros(labels.max() + 1, np.int32) for class_id, labels in components.items()
    }
    kept = [region for region in found if region[0] >= min_area]
    for number, (_, class_id, label) in enumerate(kept[:MAX_OBJECTS], start=1):
        numbers[class_id][label] = number
    if len(kept) > MAX_OBJECTS:
        logger.warning(
            "%d regions beyond the %d objects CVAT's mask format holds per image became "
            "background; raise --min_area to drop small regions instead",
            len(kept) - MAX_OBJECTS,
            MAX_OBJECTS,
        )
    instances = np.zeros(class_ids.shape, dtype=np.int32)
    kept_ids = class_ids.copy()
    for class_id, labels in components.items():
        mapped = numbers[class_id][labels]
        inside = class_ids == class_id
        instances[inside] = mapped[inside]
        kept_ids[inside & (mapped == 0)] = IGNORE_INDEX
    return instances, kept_ids


def _png(rgb):
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError("OpenCV could not encode a PNG")
    return encoded.tobytes()


class CvatMaskArchive:
    """Writes predicted class masks as a CVAT "Segmentation mask 1.1" zip (module doc).

    Args:
        path: path-like, the `.zip` to write (replaced if it exists).
        labels: `semseg.base.labels.LabelSpec` of the run.
        min_area: int, connected regions of fewer pixels become background.

    Use it as a context manager: the zip appears at `path` only when the block ends
    without an error.
    """

    def __init__(self, path, labels, min_area=0):
        self.path = Path(path)
        self.labels = labels
        self.min_area = int(min_area)
        self._colors, self._background_id = cvat_classes(labels)
        lookup = np.zeros((256, 3), dtype=np.uint8)
        for class_id, color in self._colors.items():
            lookup[class_id] = color
        self._lookup = lookup  # background, ignore and dropped regions stay black
        self._names = []
        self._temp_path = temporary_sibling(self.path)
        self._zip = None

    def __enter__(self):
        try:
            self._zip = zipfile.ZipFile(self._temp_path, "w", compression=zipfile.ZIP_DEFLATED)
            self._writer = ExportWriter(self._zip)
        except OSError as error:
            # The temporary name is ours; the user named the archive.
            raise InputError(
                f"{self.path}: cannot be written there ({error.strerror or error})"
            ) from None
        return self

    def add(self, name, class_ids):
        """Adds one image's mask; `name` is the image file name without extension.

        Returns:
            int, the number of objects written.
        """
        if name in self._names:
            raise InputError(f"{name}: two images of this name in one CVAT archive")
        instances, kept_ids = objects(class_ids, self.min_area, self._background_id)
        self._writer.write_mask(name, _png(self._lookup[kept_ids]))
        self._writer.write_object_mask(name, _png(_INSTANCE_COLORS[instances]))
        self._names.append(name)
        return int(instances.max())

    def __exit__(self, exception_type, exception, traceback):
        try:
            if exception_type is None:
                self._writer.write(cvat.LABELMAP_FILE, labelmap_text(self.labels))
                self._writer.write_list("default", self._names)
            self._zip.close()
            if exception_type is None:
                os.replace(self._temp_path, self.path)
        finally:
            self._temp_path.unlink(missing_ok=True)
