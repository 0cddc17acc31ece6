"""Colour masks <-> integer id masks, exactly, for CVAT exports.

`SegmentationClass/` masks paint each class in its `labelmap.txt` colour;
`LabelColors` turns them into labelmap positions and back. Augmentation only
ever moves these ids (nearest neighbour), so a mask written back holds nothing
but labelmap colours. `SegmentationObject/` masks paint each instance in its own
colour with black for "no object"; `object_ids_from_rgb` numbers those colours
per image, black always being id 0.

    colors = LabelColors.from_labelmap("export/labelmap.txt")
    class_ids = colors.to_ids(rgb_mask, "export/SegmentationClass/a.png")  # (H, W) uint8
    rgb_again = colors.to_rgb(class_ids)
"""

import numpy as np

from full_semantic import raster
from full_semantic.cvat import read_labelmap
from semseg.base.errors import InputError
from semseg.base.labels import IGNORE_INDEX

BACKGROUND_NAME = "background"
_MAX_OBJECT_COLORS = np.iinfo(np.uint16).max


class LabelColors:
    """The colours of a `labelmap.txt`; a class id is the position of its line.

    Args:
        entries: list of `full_semantic.cvat.LabelmapEntry`, in labelmap order.
        labelmap_name: str naming the labelmap in error messages.

    Attributes:
        names: list of str, class names in labelmap order.
        colors: uint8 array `(K, 3)`, the colour of each class.

    Raises:
        InputError: if the labelmap has more classes than a uint8 mask holds
            next to `IGNORE_INDEX`.
    """

    def __init__(self, entries, labelmap_name):
        if len(entries) > IGNORE_INDEX:
            raise InputError(
                f"{labelmap_name}: {len(entries)} classes, but uint8 masks hold at most "
                f"{IGNORE_INDEX} (id {IGNORE_INDEX} means ignore)."
            )
        self.labelmap_name = str(labelmap_name)
        self.names = [entry.name for entry in entries]
        self.colors = np.array([entry.color for entry in entries], dtype=np.uint8).reshape(-1, 3)
        self._lookup = raster.ColorLookup(
            [entry.color for entry in entries],
            range(len(entries)),
            self.labelmap_name,
            hint=" Masks may only hold labelmap colours.",
        )

    @classmethod
    def from_labelmap(cls, path, display_name=None):
        """Reads a CVAT `labelmap.txt` with `full_semantic.cvat.read_labelmap`.

        Args:
            path: path-like, the file.
            display_name: str naming it in messages; defaults to the path.
        """
        display_name = display_name or str(path)
        return cls(read_labelmap(path, display_name=display_name), display_name)

    @property
    def palette(self):
        """The colours as `[r, g, b]` int lists, for `semseg.predict.visualization`."""
        return self.colors.astype(int).tolist()

    def index_of(self, name, flag):
        """The id of class `name`; `flag` names the option it came from in errors."""
        if name not in self.names:
            raise InputError(
                f"{flag} {name!r} is not a class of {self.labelmap_name}; expected one of "
                f"{self.names}."
            )
        return self.names.index(name)

    def background_index(self, name=None, flag="--background_label"):
        """The background class: `name` if given, else `background`, else the first class."""
        if name is not None:
            return self.index_of(name, flag)
        return self.names.index(BACKGROUND_NAME) if BACKGROUND_NAME in self.names else 0

    def to_ids(self, rgb, mask_name):
        """Maps an RGB mask to class ids by exact colour.

        Args:
            rgb: uint8 array `(H, W, 3)`.
            mask_name: str naming the mask in error messages.

        Returns:
            uint8 array `(H, W)` of labelmap positions.

        Raises:
            InputError: naming the colours missing from the labelmap, their pixel
                counts and the file.
        """
        return self._lookup.map(rgb, mask_name)

    def to_rgb(self, class_ids):
        """Paints class ids `(H, W)` in their labelmap colours: uint8 `(H, W, 3)`."""
        return self.colors[np.asarray(class_ids)]


def object_ids_from_rgb(rgb, mask_name):
    """Numbers the instance colours of a `SegmentationObject/` mask.

    Args:
        rgb: uint8 array `(H, W, 3)`; black means "no object".
        mask_name: str naming the mask in error messages.

    Returns:
        `(object_ids, table)`: uint16 `(H, W)` ids and the uint32 packed colour
        of each id, black being id 0 (`object_rgb_from_ids` inverts it).

    Raises:
        InputError: if the mask holds more colours than uint16 ids.
    """
    packed = raster.pack_colors(rgb)
    table = np.unique(np.concatenate([np.zeros(1, np.uint32), packed.ravel()]))
    if len(table) > _MAX_OBJECT_COLORS:
        raise InputError(
            f"{mask_name}: {len(table)} instance colours; at most {_MAX_OBJECT_COLORS} supported."
        )
    return np.searchsorted(table, packed).astype(np.uint16), table


def object_rgb_from_ids(object_ids, table):
    """Paints object ids `(H, W)` in the colours of `table`: uint8 `(H, W, 3)`."""
    return raster.unpack_colors(table[np.asarray(object_ids)])
