"""The augmentation pipeline: albumentations transforms on an image and its id masks.

One augmented copy applies a random subset of the chosen ops, always in this order:

1. geometry, image and masks together in one `A.Compose` call: `shift`, `rotate`
   and `scale` are one `A.Affine` warp (one interpolation, not three), then `flip`
   (`A.HorizontalFlip`; vertical flips are left out, they make unnatural scenes).
   The image is interpolated bilinearly; the class-id and object-id masks travel
   stacked as the `mask` target and are resampled with nearest neighbour, so
   they keep exactly the ids they had. Pixels uncovered at the border are black
   in the image and `fill_class` in the class mask (no object in the object mask).
2. `bg_replace`: the labelled foreground (class != `background_class`, or
   object id != 0 when object masks are used) is pasted, pixel for pixel, onto a
   background image resized to cover the frame and randomly cropped; every other
   pixel, the border uncovered by step 1 included, becomes background.
3. photometry on the image only: `color` (`A.ColorJitter`), then `blur`
   (`A.GaussianBlur` or `A.MotionBlur`).

Each chosen op is drawn with probability `op_probability`; a copy that draws none
gets one op picked at random, so no copy is left unchanged. All randomness comes
from the `numpy.random.Generator` passed to `Augmenter.augment`;
`example_rng(seed, name, copy_index)` derives it from the run seed, so a copy does
not depend on which process makes it or in which order.

    augmenter = Augmenter(AugmentationSettings(ops=("rotate", "flip"), fill_class=0,
                                               background_class=0))
    copy = augmenter.augment(image, class_ids, None, example_rng(0, "a", 0))
"""

import dataclasses
import hashlib
import math
import os

# albumentations asks PyPI for a newer version at import time unless told not to.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from data_augmentation.source_files import read_rgb  # noqa: E402
from semseg.base.errors import InputError  # noqa: E402

GEOMETRIC_OPS = ("shift", "rotate", "scale", "flip")
PHOTOMETRIC_OPS = ("color", "blur")
BACKGROUND_OP = "bg_replace"
OPS = GEOMETRIC_OPS + PHOTOMETRIC_OPS + (BACKGROUND_OP,)
DEFAULT_OPS = GEOMETRIC_OPS + PHOTOMETRIC_OPS
ALBUMENTATIONS_VERSION = A.__version__
_BACKGROUND_CACHE_SIZE = 16


def parse_ops(text):
    """Parses `--ops`: comma-separated names of `OPS`.

    Args:
        text: str such as `"shift,rotate,flip"`, or a sequence of names.

    Returns:
        tuple of distinct op names, in the order given.

    Raises:
        InputError: for an empty list or an unknown name.
    """
    names = text.split(",") if isinstance(text, str) else list(text)
    names = [name.strip() for name in names if name.strip()]
    unknown = [name for name in names if name not in OPS]
    if unknown:
        raise InputError(f"--ops: unknown op(s) {unknown}; expected some of {','.join(OPS)}.")
    if not names:
        raise InputError(f"--ops is empty; expected some of {','.join(OPS)}.")
    return tuple(dict.fromkeys(names))


def example_rng(seed, name, copy_index):
    """The random generator of one augmented copy, a pure function of its arguments.

    Args:
        seed: int >= 0, the run seed (`--seed`).
        name: str, the source example's name.
        copy_index: int, which copy of the example (0-based).

    Returns:
        `numpy.random.Generator`.
    """
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    name_words = [int.from_bytes(digest[start : start + 4], "little") for start in (0, 4, 8, 12)]
    return np.random.default_rng([seed, copy_index, *name_words])


@dataclasses.dataclass(frozen=True)
class AugmentationSettings:
    """What the augmenter does; each field comes from an `augment_data.py` flag.

    Attributes:
        ops: tuple of names from `OPS`.
        fill_class: int, class id painted where geometry uncovers the border.
        background_class: int, the class id `bg_replace` replaces.
        op_probability: float in (0, 1], chance of each op being applied to a copy.
        shift_limit: float, largest shift as a fraction of width and height.
        rotate_limit: float, largest rotation in degrees (either way).
        scale_limit: float, zoom factor drawn from `[1 - limit, 1 + limit]`.
        foreground_from_objects: bool, `bg_replace` keeps the pixels with an
            object (object id != 0) instead of those of a non-background class.
    """

    ops: tuple
    fill_class: int
    background_class: int
    op_probability: float = 0.5
    shift_limit: float = 0.1
    rotate_limit: float = 15.0
    scale_limit: float = 0.2
    foreground_from_objects: bool = False

    def __post_init__(self):
        object.__setattr__(self, "ops", parse_ops(self.ops))
        checks = (
            ("--op_probability", self.op_probability, 0.0 < self.op_probability <= 1.0, "(0, 1]"),
            ("--shift_limit", self.shift_limit, 0.0 <= self.shift_limit < 1.0, "[0, 1)"),
            ("--rotate_limit", self.rotate_limit, 0.0 <= self.rotate_limit <= 180.0, "[0, 180]"),
            ("--scale_limit", self.scale_limit, 0.0 <= self.scale_limit < 1.0, "[0, 1)"),
        )
        for flag, value, valid, expected in checks:
            if not valid:
                raise InputError(f"{flag} must be in {expected}. Received: {value}")


@dataclasses.dataclass
class AugmentedExample:
    """One augmented copy.

    Attributes:
        image: uint8 `(H, W, 3)`.
        class_ids: uint8 `(H, W)` labelmap positions.
        object_ids: uint16 `(H, W)` object ids (0 = no object), or None.
        ops: tuple of the op names applied, in `OPS` order.
        background: path of the image `bg_replace` used, or None.
    """

    image: np.ndarray
    class_ids: np.ndarray
    object_ids: np.ndarray | None
    ops: tuple
    background: object = None


class Augmenter:
    """Applies `AugmentationSettings` to examples.

    Args:
        settings: `AugmentationSettings`.
        backgrounds: sequence of image paths for `bg_replace` (sorted by the
            caller; the choice is by position).

    Raises:
        InputError: if `bg_replace` is chosen without backgrounds.
    """

    def __init__(self, settings, backgrounds=()):
        self.settings = settings
        self.backgrounds = list(backgrounds)
        if BACKGROUND_OP in settings.ops and not self.backgrounds:
            raise InputError("--ops bg_replace needs background images: pass --bg_path.")
        self._pipelines = {}
        self._background_cache = {}

    def __getstate__(self):
        # Worker processes rebuild the albumentations pipelines and caches themselves.
        return {"settings": self.settings, "backgrounds": self.backgrounds}

    def __setstate__(self, state):
        self.__init__(state["settings"], state["backgrounds"])

    def choose_ops(self, rng):
        """Draws the ops of one copy: each with `op_probability`, at least one."""
        ops = self.settings.ops
        chosen = [op for op in ops if rng.random() < self.settings.op_probability]
        if not chosen:
            chosen = [ops[int(rng.integers(len(ops)))]]
        return tuple(op for op in OPS if op in chosen)

    def augment(self, image, class_ids, object_ids, rng):
        """Makes one augmented copy.

        Args:
            image: uint8 `(H, W, 3)`.
            class_ids: uint8 `(H, W)` labelmap positions.
            object_ids: uint16 `(H, W)` object ids (0 = no object), or None.
            rng: `numpy.random.Generator`, e.g. from `example_rng`.

        Returns:
            an `AugmentedExample` of the same size.
        """
        ops = self.choose_ops(rng)
        has_objects = object_ids is not None
        if object_ids is None:
            object_ids = np.zeros(class_ids.shape, np.uint16)
        geometric = tuple(op for op in ops if op in GEOMETRIC_OPS)
        if geometric:
            pipeline = self._geometric_pipeline(geometric, replacing=BACKGROUND_OP in ops)
            pipeline.set_random_seed(int(rng.integers(2**32)))
            stacked = np.stack([class_ids.astype(np.uint16), object_ids], axis=-1)
            result = pipeline(image=image, mask=stacked)
            image = result["image"]
            class_ids = result["mask"][..., 0].astype(np.uint8)
            object_ids = result["mask"][..., 1]
        background = None
        if BACKGROUND_OP in ops:
            background = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
            image, class_ids, object_ids = self._replace_background(
                image, class_ids, object_ids, background, rng
            )
        photometric = tuple(op for op in ops if op in PHOTOMETRIC_OPS)
        if photometric:
            pipeline = self._photometric_pipeline(photometric)
            pipeline.set_random_seed(int(rng.integers(2**32)))
            image = pipeline(image=image)["image"]
        return AugmentedExample(
            image=np.ascontiguousarray(image),
            class_ids=np.ascontiguousarray(class_ids),
            object_ids=np.ascontiguousarray(object_ids) if has_objects else None,
            ops=ops,
            background=background,
        )

    def foreground(self, class_ids, object_ids):
        """Boolean `(H, W)`: the pixels `bg_replace` keeps."""
        if self.settings.foreground_from_objects and object_ids is not None:
            return object_ids != 0
        return class_ids != self.settings.background_class

    def _replace_background(self, image, class_ids, object_ids, background_path, rng):
        height, width = class_ids.shape
        background = self._cover_crop(self._read_background(background_path), height, width, rng)
        keep = self.foreground(class_ids, object_ids)
        image = np.where(keep[..., None], image, background)
        class_ids = np.where(keep, class_ids, self.settings.background_class).astype(np.uint8)
        object_ids = np.where(keep, object_ids, 0).astype(np.uint16)
        return image, class_ids, object_ids

    def _read_background(self, path):
        if path not in self._background_cache:
            if len(self._background_cache) >= _BACKGROUND_CACHE_SIZE:
                self._background_cache.clear()
            self._background_cache[path] = read_rgb(path)
        return self._background_cache[path]

    @staticmethod
    def _cover_crop(background, height, width, rng):
        """Resizes `background` to cover `height x width`, keeping its aspect; random crop."""
        source_height, source_width = background.shape[:2]
        scale = max(height / source_height, width / source_width)
        new_width = max(width, math.ceil(source_width * scale))
        new_height = max(height, math.ceil(source_height * scale))
        if (new_width, new_height) != (source_width, source_height):
            interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            background = cv2.resize(
                background, (new_width, new_height), interpolation=interpolation
            )
        top = int(rng.integers(new_height - height + 1))
        left = int(rng.integers(new_width - width + 1))
        return background[top : top + height, left : left + width]

    def _geometric_pipeline(self, ops, replacing):
        key = (ops, replacing)
        if key not in self._pipelines:
            settings = self.settings
            # Under bg_replace the uncovered border shows the new background: label it so.
            fill_class = settings.background_class if replacing else settings.fill_class
            transforms = []
            if {"shift", "rotate", "scale"} & set(ops):
                shift = settings.shift_limit if "shift" in ops else 0.0
                scale = settings.scale_limit if "scale" in ops else 0.0
                rotate = settings.rotate_limit if "rotate" in ops else 0.0
                transforms.append(
                    A.Affine(
                        translate_percent={"x": (-shift, shift), "y": (-shift, shift)},
                        scale=(1.0 - scale, 1.0 + scale),
                        keep_ratio=True,
                        rotate=(-rotate, rotate),
                        interpolation=cv2.INTER_LINEAR,
                        mask_interpolation=cv2.INTER_NEAREST,
                        border_mode=cv2.BORDER_CONSTANT,
                        fill=0,
                        fill_mask=(fill_class, 0),
                        p=1.0,
                    )
                )
            if "flip" in ops:
                transforms.append(A.HorizontalFlip(p=1.0))
            self._pipelines[key] = A.Compose(
                transforms, mask_interpolation=cv2.INTER_NEAREST, strict=True
            )
        return self._pipelines[key]

    def _photometric_pipeline(self, ops):
        if ops not in self._pipelines:
            transforms = []
            if "color" in ops:
                transforms.append(
                    A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03, p=1.0)
                )
            if "blur" in ops:
                transforms.append(
                    A.OneOf(
                        [
                            A.GaussianBlur(blur_limit=(3, 7), p=1.0),
                            A.MotionBlur(blur_limit=(3, 7), p=1.0),
                        ],
                        p=1.0,
                    )
                )
            self._pipelines[ops] = A.Compose(transforms, strict=True)
        return self._pipelines[ops]
