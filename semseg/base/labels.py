"""The label contract shared by every part of the toolkit.

Masks are integer class ids, `(H, W)` or `(B, H, W)`, where `IGNORE_INDEX` marks
pixels that take part in neither the loss nor the metrics. Class names and the
RGB palette travel with the dataset (TFDS metadata) and with the run
(`config.json`), never as command-line flags.
"""

import cv2
import numpy as np

IGNORE_INDEX = 255
IGNORE_COLOR = (0, 0, 0)


def default_palette(num_classes):
    """Distinct RGB colours for `num_classes` classes (the Pascal VOC colour map).

    Args:
        num_classes: int, number of colours to return.

    Returns:
        list of `[r, g, b]` int lists, one per class.
    """
    palette = []
    for class_id in range(num_classes):
        red = green = blue = 0
        value = class_id
        for bit in range(8):
            red |= ((value >> 0) & 1) << (7 - bit)
            green |= ((value >> 1) & 1) << (7 - bit)
            blue |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette.append([red, green, blue])
    return palette


def colorize(mask, palette):
    """Turns a class-id mask into an RGB image.

    Args:
        mask: integer array `(H, W)` of class ids; `IGNORE_INDEX` is drawn black.
        palette: sequence of `[r, g, b]`, one per class.

    Returns:
        uint8 array `(H, W, 3)`.
    """
    lookup = np.zeros((256, 1, 3), dtype=np.uint8)
    lookup[: len(palette), 0] = np.asarray(palette, dtype=np.uint8)
    lookup[IGNORE_INDEX, 0] = IGNORE_COLOR
    # OpenCV's colour map with a 256-entry table is several times faster than numpy
    # indexing on full-HD frames; it works in BGR, hence the conversions.
    colors_bgr = cv2.applyColorMap(np.asarray(mask, dtype=np.uint8), lookup[..., ::-1].copy())
    return cv2.cvtColor(colors_bgr, cv2.COLOR_BGR2RGB)


class LabelSpec:
    """Class names and palette of a dataset; the ids are the list positions.

    Args:
        class_names: list of str, one per class id `0..num_classes - 1`.
        palette: list of `[r, g, b]`, one per class; `None` picks distinct colours.
    """

    def __init__(self, class_names, palette=None):
        class_names = [str(name) for name in class_names]
        if not class_names:
            raise ValueError("A dataset needs at least one class. Received: class_names=[]")
        if len(class_names) >= IGNORE_INDEX:
            raise ValueError(
                f"At most {IGNORE_INDEX - 1} classes fit in a uint8 mask with ignore index "
                f"{IGNORE_INDEX}. Received: {len(class_names)} classes"
            )
        if palette is None:
            palette = default_palette(len(class_names))
        palette = [[int(channel) for channel in color] for color in palette]
        if len(palette) != len(class_names) or any(len(color) != 3 for color in palette):
            raise ValueError(
                f"Expected one [r, g, b] colour per class ({len(class_names)}). "
                f"Received: palette={palette}"
            )
        self.class_names = class_names
        self.palette = palette

    @property
    def num_classes(self):
        return len(self.class_names)

    def to_dict(self):
        return {
            "class_names": self.class_names,
            "palette": self.palette,
            "ignore_index": IGNORE_INDEX,
        }

    @classmethod
    def from_dict(cls, values):
        return cls(values["class_names"], values.get("palette"))

    def __eq__(self, other):
        return isinstance(other, LabelSpec) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return f"LabelSpec(class_names={self.class_names})"
