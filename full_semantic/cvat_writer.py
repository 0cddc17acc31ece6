"""Writes CVAT "Segmentation mask 1.1" exports: the one writer of the layout
`full_semantic.cvat` reads (the labelmap, split lists, images, colour masks, instance
masks), into a folder or a zip.

Its users: the pre-annotation archive of a run's predictions
(`semseg.labelling.cvat_masks`), the demo export (`full_semantic.demo_data`) and offline
augmentation (`data_augmentation.augment_export`). Each member's path inside the export
comes from one function here, so the layout is typed once (`full_semantic.cvat`'s
constants).

Example:

    with zipfile.ZipFile("pre.zip", "w") as archive:
        writer = ExportWriter(archive)
        writer.write_mask("frame_0001", png_bytes)
        writer.write_labelmap([("road", (128, 64, 128))], header=False)
        writer.write_list("default", ["frame_0001"])
"""

import shutil
import zipfile
from pathlib import Path

from full_semantic import cvat


def image_member(name, extension):
    """`JPEGImages/NAME.EXT`: where an export keeps the image of `name`."""
    return f"{cvat.IMAGES_DIR}/{name}{extension}"


def mask_member(name):
    """`SegmentationClass/NAME.png`: the colour mask of `name`."""
    return f"{cvat.MASKS_DIR}/{name}.png"


def object_mask_member(name):
    """`SegmentationObject/NAME.png`: the instance mask of `name`."""
    return f"{cvat.OBJECT_MASKS_DIR}/{name}.png"


def list_member(split):
    """`ImageSets/Segmentation/SPLIT.txt`: the names of one list."""
    return f"{cvat.LISTS_DIR}/{split}.txt"


class ExportWriter:
    """Writes the members of one export into a folder (created as needed) or an open
    `zipfile.ZipFile`.

    The caller makes the whole export atomic (a temporary folder or zip renamed into
    place at the end); this class only puts each member where the layout says.

    Args:
        destination: path-like folder, or a `zipfile.ZipFile` open for writing.
    """

    def __init__(self, destination):
        self._zip = destination if isinstance(destination, zipfile.ZipFile) else None
        self._folder = None if self._zip else Path(destination)

    def path(self, member):
        """The file of `member` in a folder export (its parent created)."""
        if self._folder is None:
            raise ValueError("a zip export has no file paths; write its members")
        path = self._folder / member
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def write(self, member, data):
        """Writes `data` (bytes or str) as `member`, a path inside the export."""
        if self._zip is not None:
            self._zip.writestr(member, data)
        elif isinstance(data, str):
            self.path(member).write_text(data)
        else:
            self.path(member).write_bytes(data)

    def write_labelmap(self, classes, header=True):
        """`labelmap.txt` of `(name, (r, g, b))` classes (`cvat.format_labelmap`)."""
        self.write(cvat.LABELMAP_FILE, cvat.format_labelmap(classes, header=header))

    def copy_labelmap(self, source):
        """`labelmap.txt` copied byte for byte from another export's."""
        self._copy(source, cvat.LABELMAP_FILE)

    def write_list(self, split, names):
        """`ImageSets/Segmentation/SPLIT.txt`: one name per line."""
        self.write(list_member(split), "".join(f"{name}\n" for name in names))

    def write_mask(self, name, png):
        self.write(mask_member(name), png)

    def write_object_mask(self, name, png):
        self.write(object_mask_member(name), png)

    def copy_example(self, name, image, mask, object_mask=None):
        """An example's files copied byte for byte (the image keeps its extension)."""
        self._copy(image, image_member(name, Path(image).suffix))
        self._copy(mask, mask_member(name))
        if object_mask is not None:
            self._copy(object_mask, object_mask_member(name))

    def _copy(self, source, member):
        if self._zip is not None:
            self._zip.write(source, member)
        else:
            shutil.copyfile(source, self.path(member))
