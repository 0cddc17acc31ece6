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

from full_semantic.cvat import read_labelmap
from semseg.errors import InputError
from semseg.labels import IGNORE_INDEX

BACKGROUND_NAME = "background"
_MAX_COLORS_SHOWN = 5
_MAX_OBJECT_COLORS = np.iinfo(np.uint16).max


def pack_colors(rgb):
    """Packs RGB triples into one uint32 each: `(..., 3)` uint8 -> `(...)` uint32."""
    rgb = np.asarray(rgb)
    return (
        (rgb[..., 0].astype(np.uint32) << 16)
        | (rgb[..., 1].astype(np.uint32) << 8)
        | rgb[..., 2].astype(np.uint32)
    )


def unpack_colors(packed):
    """Inverse of `pack_colors`: `(...)` uint32 -> `(..., 3)` uint8."""
    packed = np.asarray(packed, dtype=np.uint32)
    return np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=-1).astype(
        np.uint8
    )


def describe_unknown_colors(unknown_packed):
    """`"(1, 2, 3) in 40 pixel(s), ..."` for the most frequent of some packed colours.

    Returns:
        `(number of distinct colours, number of pixels, text)`.
    """
    colors, counts = np.unique(unknown_packed, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:_MAX_COLORS_SHOWN]
    shown = ", ".join(
        f"{tuple(int(channel) for channel in unpack_colors(colors[index]))} in "
        f"{counts[index]} pixel(s)"
        for index in order
    )
    if len(colors) > len(order):
        shown += f", and {len(colors) - len(order)} more"
    return len(colors), int(counts.sum()), shown


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
        packed = pack_colors(self.colors)
        order = np.argsort(packed)
        self._sorted_packed = packed[order]
        self._ids_of_sorted = order.astype(np.uint8)

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
        """The colours as `[r, g, b]` int lists, for `semseg.visualization`."""
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
        packed = pack_colors(rgb)
        positions = np.minimum(
            np.searchsorted(self._sorted_packed, packed), len(self._sorted_packed) - 1
        )
        known = self._sorted_packed[positions] == packed
        if not known.all():
            count, pixels, shown = describe_unknown_colors(packed[~known])
            raise InputError(
                f"{mask_name}: {count} colour(s) not in {self.labelmap_name} ({pixels} pixels): "
                f"{shown}. Masks may only hold labelmap colours."
            )
        return self._ids_of_sorted[positions]

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
    packed = pack_colors(rgb)
    table = np.unique(np.concatenate([np.zeros(1, np.uint32), packed.ravel()]))
    if len(table) > _MAX_OBJECT_COLORS:
        raise InputError(
            f"{mask_name}: {len(table)} instance colours; at most {_MAX_OBJECT_COLORS} supported."
        )
    return np.searchsorted(table, packed).astype(np.uint16), table


def object_rgb_from_ids(object_ids, table):
    """Paints object ids `(H, W)` in the colours of `table`: uint8 `(H, W, 3)`."""
    return unpack_colors(table[np.asarray(object_ids)])
