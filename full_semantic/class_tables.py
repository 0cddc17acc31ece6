"""The class tables of released models' datasets, in one place: Cityscapes' 19 train ids
(`full_semantic.cityscapes`, which reads the dataset) and CamVid's 11 classes (the
SegNet protocol the authors' CamVid files were trained with), with the image size each
dataset's models run at.

Example:

    names, palette = class_table("camvid")
"""

from full_semantic.cityscapes import class_set_table
from semseg.base.errors import InputError

CAMVID_CLASSES = (
    ("sky", (128, 128, 128)),
    ("building", (128, 0, 0)),
    ("pole", (192, 192, 128)),
    ("road", (128, 64, 128)),
    ("sidewalk", (0, 0, 192)),
    ("tree", (128, 128, 0)),
    ("signsymbol", (192, 128, 128)),
    ("fence", (64, 64, 128)),
    ("car", (64, 0, 128)),
    ("pedestrian", (64, 64, 0)),
    ("bicyclist", (0, 128, 192)),
)
CLASS_TABLES = ("cityscapes", "camvid")
IMAGE_SIZES = {"cityscapes": (1024, 2048), "camvid": (720, 960)}


def class_table(name):
    """`(class names, palette)` of `"cityscapes"` (19 train ids) or `"camvid"` (11)."""
    if name == "cityscapes":
        names, palette, _ = class_set_table("train_ids")
        return list(names), [list(color) for color in palette]
    if name == "camvid":
        return [n for n, _ in CAMVID_CLASSES], [list(color) for _, color in CAMVID_CLASSES]
    raise InputError(f"--classes must be one of {', '.join(CLASS_TABLES)}. Received: {name!r}")
