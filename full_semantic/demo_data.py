"""A synthetic CVAT "Segmentation mask 1.1" export for the demo and the tests.

Scenes of discs, boxes and triangles on cluttered, muted backgrounds. Each
shape class has its own family of saturated hues and its own surface texture
(discs radial shading, boxes stripes, triangles speckles), with random sizes,
rotations and overlaps; the background carries grey distractor strokes and
blobs. The task is easy enough for a model trained from scratch on two CPU
cores to reach a high mIoU in minutes, yet needs shape, colour and texture.
The export has the exact layout CVAT writes, so it goes through
`tfds build full_semantic --config cvat` like a user's own labels.

Example:

    write_demo_export("build/demo/cvat_export", num_train=300, num_val=60)
"""

import dataclasses
import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from full_semantic.cvat_writer import ExportWriter, image_member, mask_member
from semseg.base.cli import Command, at_least, option, size_at_least

LABELMAP = (
    ("background", (0, 0, 0)),
    ("disc", (230, 25, 75)),
    ("box", (60, 180, 75)),
    ("triangle", (0, 130, 200)),
)


# Hue range (OpenCV degrees / 2, 0..180) of each shape class.
HUE_RANGES = {"disc": (0, 15), "box": (45, 75), "triangle": (100, 125)}


def _hsv_to_rgb(hue, saturation, value):
    pixel = np.array([[[hue, saturation, value]]], dtype=np.uint8)
    return cv2.cvtColor(pixel, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float64)


def _muted_colors(rng, count):
    return np.array(
        [
            _hsv_to_rgb(rng.uniform(0, 180), rng.uniform(0, 50), rng.uniform(40, 230))
            for _ in range(count)
        ]
    )


def _background(rng, size):
    height, width = size
    low, high = _muted_colors(rng, 2)
    ramp = np.linspace(0.0, 1.0, width)[None, :, None]
    if rng.random() < 0.5:
        ramp = np.linspace(0.0, 1.0, height)[:, None, None]
    image = low + (high - low) * ramp * np.ones((height, width, 1))
    coarse = rng.normal(0, 12, (max(height // 16, 2), max(width // 16, 2), 1))
    image += cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)[..., None]
    for _ in range(rng.integers(2, 6)):
        color = _muted_colors(rng, 1)[0].tolist()
        start = tuple(int(value) for value in rng.integers(0, [width, height]))
        end = tuple(int(value) for value in rng.integers(0, [width, height]))
        cv2.line(image, start, end, color, int(rng.integers(1, 4)), cv2.LINE_AA)
    for _ in range(rng.integers(0, 3)):
        center = tuple(int(value) for value in rng.integers(0, [width, height]))
        axes = tuple(int(value) for value in rng.integers(3, max(min(size) // 10, 4), 2))
        angle = float(rng.uniform(0, 180))
        color = _muted_colors(rng, 1)[0].tolist()
        cv2.ellipse(image, center, axes, angle, 0, 360, color, -1, cv2.LINE_AA)
    return image


def _shape_region(rng, class_name, size):
    height, width = size
    region = np.zeros(size, dtype=np.uint8)
    radius = rng.uniform(0.12, 0.26) * min(size)
    center = rng.uniform(
        [radius * 0.5, radius * 0.5], [width - radius * 0.5, height - radius * 0.5]
    )
    angle = rng.uniform(0, 2 * np.pi)
    if class_name == "disc":
        cv2.circle(region, tuple(int(value) for value in center), int(radius), 1, -1)
        return region
    corners = 4 if class_name == "box" else 3
    angles = angle + np.arange(corners) * 2 * np.pi / corners
    stretch = rng.uniform(0.7, 1.3)
    points = center + radius * np.stack([np.cos(angles) * stretch, np.sin(angles)], axis=1)
    cv2.fillPoly(region, [np.round(points).astype(np.int32)], 1)
    return region


def _texture(rng, class_name, size, region):
    height, width = size
    color = _hsv_to_rgb(
        rng.uniform(*HUE_RANGES[class_name]), rng.uniform(150, 255), rng.uniform(120, 255)
    )
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    if class_name == "disc":
        ys, xs = np.nonzero(region)
        center_y, center_x = ys.mean(), xs.mean()
        radius = max(np.sqrt(region.sum() / np.pi), 1.0)
        distance = np.sqrt((rows - center_y) ** 2 + (cols - center_x) ** 2) / radius
        shade = 1.1 - 0.6 * np.clip(distance, 0, 1) ** 2
    elif class_name == "box":
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(4, 9)
        phase = (rows * np.sin(angle) + cols * np.cos(angle)) / period
        shade = 0.75 + 0.35 * np.sign(np.sin(2 * np.pi * phase))
    else:
        shade = 0.9 + 0.45 * (rng.random(size) < 0.18) - 0.3 * (rng.random(size) < 0.12)
    return color * shade[..., None]


def draw_scene(rng, size=(160, 160), max_shapes=4):
    """One random scene.

    Args:
        rng: `np.random.Generator`.
        size: `(height, width)`.
        max_shapes: at most this many shapes (at least one).

    Returns:
        `(image uint8 (H, W, 3) RGB, class_ids uint8 (H, W))` with ids in `LABELMAP` order.
    """
    image = _background(rng, size)
    class_ids = np.zeros(size, dtype=np.uint8)
    for _ in range(rng.integers(1, max_shapes + 1)):
        class_id = int(rng.integers(1, len(LABELMAP)))
        class_name = LABELMAP[class_id][0]
        region = _shape_region(rng, class_name, size).astype(bool)
        image[region] = _texture(rng, class_name, size, region)[region]
        class_ids[region] = class_id
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), class_ids


def scene_variant(rng, image, class_ids):
    """A cheap new scene from a drawn one: mirrored or not, shifted sideways (wrapping
    round) and brighter or darker, the same for the image and its class ids."""
    if rng.random() < 0.5:
        image, class_ids = image[:, ::-1], class_ids[:, ::-1]
    shift = int(rng.integers(image.shape[1]))
    image, class_ids = np.roll(image, shift, axis=1), np.roll(class_ids, shift, axis=1)
    gain = rng.uniform(0.8, 1.2)
    return np.clip(image * gain, 0, 255).astype(np.uint8), np.ascontiguousarray(class_ids)


@dataclasses.dataclass
class DemoDataConfig(Command):
    """`make_demo_data.py`'s settings: where the export goes and what it holds."""

    output: str = option(required=True, help="folder of the export (replaced)")
    num_train: int = option(300, "training examples", check=at_least(1))
    num_val: int = option(60, "validation examples", check=at_least(1))
    size: tuple[int, int] = option((160, 160), "image size", check=size_at_least(32))
    seed: int = option(0, "seeds the scenes")


def write_demo_export(
    output_dir, num_train=300, num_val=60, size=(160, 160), seed=0, distinct_scenes=None
):
    """Writes a CVAT "Segmentation mask 1.1" export of random scenes.

    The export is written to a temporary folder beside `output_dir` and renamed
    into place when complete; an existing `output_dir` is replaced.

    Args:
        output_dir: destination folder.
        num_train: examples listed in `ImageSets/Segmentation/train.txt`.
        num_val: examples listed in `ImageSets/Segmentation/val.txt`.
        size: `(height, width)` of the images.
        seed: the same seed writes the same export.
        distinct_scenes: None draws every scene; N draws N scenes and makes each
            example a `scene_variant` of one of them, about 15x faster at 360x480
            (for exports of tens of thousands of images, `bench/build_scale.py`).

    Returns:
        `Path` of the export.
    """
    output_dir = Path(output_dir)
    temp_dir = output_dir.with_name(f".{output_dir.name}.tmp")
    shutil.rmtree(temp_dir, ignore_errors=True)
    writer = ExportWriter(temp_dir)
    writer.write_labelmap(LABELMAP)
    palette = np.array([color for _, color in LABELMAP], dtype=np.uint8)
    rng = np.random.default_rng(seed)
    scenes = [draw_scene(rng, size) for _ in range(distinct_scenes or 0)]
    for split, count in (("train", num_train), ("val", num_val)):
        names = [f"{split}_{index:04d}" for index in range(count)]
        for name in names:
            if scenes:
                image, class_ids = scene_variant(rng, *scenes[rng.integers(len(scenes))])
            else:
                image, class_ids = draw_scene(rng, size)
            cv2.imwrite(
                str(writer.path(image_member(name, ".jpg"))),
                cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 92],
            )
            colors = cv2.cvtColor(palette[class_ids], cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(writer.path(mask_member(name))), colors)
        writer.write_list(split, names)
    shutil.rmtree(output_dir, ignore_errors=True)
    os.replace(temp_dir, output_dir)
    return output_dir
