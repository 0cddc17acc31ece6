"""`select_images.py`'s settings (`SelectImagesConfig`), checked before TensorFlow loads."""

import dataclasses

from semseg.base.cli import at_least, option, within
from semseg.base.options import MinAreaOptions, RunOptions


@dataclasses.dataclass
class SelectImagesConfig(MinAreaOptions, RunOptions):
    """The pool to pick from, how many to pick and where the picks go."""

    input: tuple[str, ...] = option(required=True, help="image files or folders")
    count: int = option(required=True, help="how many images to pick", check=at_least(1))
    output: str = option(required=True, help="output folder")
    max_similarity: float = option(
        0.9,
        "skip an image this similar (thumbnail cosine, -1..1) to an earlier pick",
        check=within(-1.0, 1.0),
    )
    overwrite: bool = option(False, "replace the picks of an earlier round in a non-empty --output")
