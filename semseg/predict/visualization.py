"""Drawing masks: colour overlays, legends and image | truth | prediction panels.

All functions take and return uint8 RGB arrays `(H, W, 3)`; convert to BGR only
when handing frames to OpenCV's writers.
"""

import cv2
import numpy as np

from semseg.base.labels import IGNORE_INDEX, colorize

FONT = cv2.FONT_HERSHEY_SIMPLEX
ERROR_COLOR = (255, 0, 0)
IGNORED_COLOR = (128, 128, 128)


def to_rgb(image):
    """Turns a 1-, 3- or 4-channel image into 3-channel uint8 RGB for display.

    A 1-channel image (e.g. thermal) becomes grey; a 4-channel one shows its first three.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        return np.repeat(image, 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


def overlay(image, mask, palette, alpha=0.5):
    """Blends the colourised mask over the image; ignored pixels stay untouched.

    Args:
        image: uint8 `(H, W, C)` image.
        mask: integer `(H, W)` class ids.
        palette: `[r, g, b]` per class.
        alpha: weight of the mask colour, 0..1.

    Returns:
        uint8 `(H, W, 3)`.
    """
    image = to_rgb(image)
    mask = np.asarray(mask, dtype=np.uint8)
    colors = colorize(mask, palette)
    blended = cv2.addWeighted(image, 1.0 - alpha, colors, alpha, 0.0)
    ignored = mask == IGNORE_INDEX
    if ignored.any():
        blended[ignored] = image[ignored]
    return blended


def legend(class_names, palette, width, class_ids=None, row_height=18):
    """A strip of colour swatches with class names, as wide as `width`.

    Args:
        class_names: names of all classes.
        palette: `[r, g, b]` per class.
        width: width in pixels of the strip.
        class_ids: the classes to show; all when `None`.
        row_height: height of one row of entries.

    Returns:
        uint8 `(rows * row_height, width, 3)` white strip.
    """
    class_ids = range(len(class_names)) if class_ids is None else sorted(class_ids)
    entries = [(class_names[index], palette[index]) for index in class_ids]
    scale = row_height / 36.0
    entry_width = max(
        [cv2.getTextSize(name, FONT, scale, 1)[0][0] + row_height + 12 for name, _ in entries]
        or [1]
    )
    per_row = max(width // entry_width, 1)
    rows = max((len(entries) + per_row - 1) // per_row, 1)
    strip = np.full((rows * row_height, width, 3), 255, dtype=np.uint8)
    for position, (name, color) in enumerate(entries):
        top = (position // per_row) * row_height
        left = (position % per_row) * entry_width + 4
        swatch = (left, top + 3), (left + row_height - 6, top + row_height - 3)
        cv2.rectangle(strip, *swatch, tuple(int(c) for c in color), thickness=-1)
        cv2.rectangle(strip, *swatch, (0, 0, 0), thickness=1)
        origin = (left + row_height, top + int(row_height * 0.72))
        cv2.putText(strip, name, origin, FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def _title(panel, text):
    cv2.putText(panel, text, (6, 20), FONT, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(panel, text, (6, 20), FONT, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return panel


def error_map(image, truth, prediction):
    """The image dimmed, with wrong pixels in red and ignored pixels in grey."""
    tile = (to_rgb(image).astype(np.float32) * 0.4).astype(np.uint8)
    truth = np.asarray(truth)
    ignored = truth == IGNORE_INDEX
    tile[~ignored & (truth != np.asarray(prediction))] = ERROR_COLOR
    tile[ignored] = IGNORED_COLOR
    return tile


def comparison_panel(image, truth, prediction, class_names, palette, alpha=0.6, title=None):
    """Image | ground truth | prediction | error side by side, over a legend.

    Args:
        image: uint8 `(H, W, C)`.
        truth: integer `(H, W)` class ids, or `None` when there is no ground
            truth (then only image | prediction).
        prediction: integer `(H, W)` class ids.
        class_names: names of all classes.
        palette: `[r, g, b]` per class.
        alpha: weight of the mask colours.
        title: optional line written above the tiles.

    Returns:
        uint8 RGB panel.
    """
    image = to_rgb(image)
    tiles = [_title(image.copy(), "image")]
    shown = set(np.unique(prediction).tolist())
    if truth is not None:
        tiles.append(_title(overlay(image, truth, palette, alpha), "ground truth"))
        shown |= set(np.unique(truth).tolist())
    tiles.append(_title(overlay(image, prediction, palette, alpha), "prediction"))
    if truth is not None:
        tiles.append(_title(error_map(image, truth, prediction), "errors"))
    row = np.concatenate(tiles, axis=1)
    shown.discard(IGNORE_INDEX)
    shown = {index for index in shown if index < len(class_names)}
    parts = [row, legend(class_names, palette, row.shape[1], shown)]
    if title:
        header = np.full((24, row.shape[1], 3), 255, dtype=np.uint8)
        cv2.putText(header, title, (6, 17), FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        parts.insert(0, header)
    return np.concatenate(parts, axis=0)
