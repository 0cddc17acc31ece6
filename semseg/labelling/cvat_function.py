"""A trained run (or an exported model) as a CVAT auto-annotation function.

The CVAT SDK's detection-function protocol (`cvat_sdk.auto_annotation`): `spec` lists
the run's classes as mask labels, and `detect(context, image)` returns one mask shape
per object, an object being one connected region of one class (as in
`semseg.labelling.cvat_masks`). Regions under `min_area` pixels are dropped; with CVAT's
"convert masks to polygons" option the objects come back as polygons; with a
confidence threshold, objects whose mean class probability is lower are dropped.

From the project root, against a CVAT server (`pip install cvat-cli`):

    # annotate task 42 now
    PYTHONPATH=$PWD cvat-cli --server-host https://cvat.example.com --auth me \\
        task auto-annotate 42 --function-module semseg.labelling.cvat_function \\
        -p work_dir=str:runs/camvid-ddrnet23_slim -p min_area=int:32

    # or make it a model in CVAT's UI (AI tools), served by an agent on this machine
    PYTHONPATH=$PWD cvat-cli ... function create-native "DDRNet CamVid" \\
        --function-module semseg.labelling.cvat_function -p work_dir=str:runs/camvid-ddrnet23_slim
    PYTHONPATH=$PWD cvat-cli ... function run-agent FUNCTION_ID \\
        --function-module semseg.labelling.cvat_function -p work_dir=str:runs/camvid-ddrnet23_slim

`-p model=str:exports/ddrnet23_slim.onnx` uses an exported model instead of a run.
"""

import cv2
import numpy as np

from semseg.base.errors import InputError
from semseg.labelling.cvat_masks import cvat_classes, regions


def _hex(color):
    return "#" + "".join(f"{int(channel):02x}" for channel in color)


class SegmentationFunction:
    """The detection function of one predictor (use `create`)."""

    def __init__(self, predictor, min_area=16):
        import cvat_sdk.auto_annotation as cvataa

        self._cvataa = cvataa
        self.predictor = predictor
        self.min_area = int(min_area)
        labels = predictor.labels
        colors, self._background_id = cvat_classes(labels)
        self.spec = cvataa.DetectionFunctionSpec(
            labels=[
                cvataa.label_spec(
                    labels.class_names[class_id], class_id, type="mask", color=_hex(color)
                )
                for class_id, color in colors.items()
            ]
        )

    def detect(self, context, image):
        """Mask (or polygon) shapes of the objects in a `PIL.Image`."""
        from cvat_sdk.masks import encode_mask

        pixels = np.asarray(image.convert("RGB" if self.predictor.num_channels == 3 else "L"))
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        threshold = context.conf_threshold
        if threshold:
            probabilities = self.predictor.probabilities(pixels)
            class_ids = probabilities.argmax(axis=-1).astype(np.uint8)
            confidence = probabilities.max(axis=-1)
        else:
            class_ids = self.predictor.predict(pixels)
        shapes = []
        for area, label_id, (left, top, width, height), bitmap in regions(
            class_ids, self._background_id
        ):
            if area < self.min_area:
                break  # largest first
            if threshold:
                window = confidence[top : top + height, left : left + width]
                if window[bitmap].mean() < threshold:
                    continue
            if context.conv_mask_to_poly:
                shapes += [
                    self._cvataa.polygon(label_id, points)
                    for points in _polygons(bitmap, left, top)
                ]
            else:
                # CVAT's mask points: run lengths over the box, then its corners.
                runs = encode_mask(bitmap, [0, 0, width, height])[:-4]
                corners = [left, top, left + width - 1, top + height - 1]
                shapes.append(self._cvataa.mask(label_id, runs + corners))
        return shapes


def _polygons(bitmap, left, top):
    """A region's contours (its bitmap inside its box at `left`, `top`) as CVAT polygon
    points `[x1, y1, x2, y2, ...]` in image coordinates.

    A CVAT polygon has no holes, so each hole is joined to its outer contour by a
    zero-width cut between their closest points (a keyhole polygon): a ring stays a
    ring instead of becoming a disc.
    """
    contours, hierarchy = cv2.findContours(
        bitmap.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE, offset=(left, top)
    )
    if hierarchy is None:
        return []
    hierarchy = hierarchy[0]  # per contour: next, previous, first child, parent
    polygons = []
    for index, contour in enumerate(contours):
        if hierarchy[index][3] != -1:
            continue  # a hole, joined to its outer contour below
        outer = _simplified(contour)
        if outer is None:
            continue
        child = hierarchy[index][2]
        while child != -1:
            hole = _simplified(contours[child])
            if hole is not None:
                outer = _join_hole(outer, hole)
            child = hierarchy[child][0]
        polygons.append(outer.reshape(-1).astype(float).tolist())
    return polygons


def _simplified(contour):
    """A contour with points closer than a pixel to its lines dropped, `(N, 2)`, or `None`
    when fewer than 3 points are left."""
    points = cv2.approxPolyDP(contour, 1.0, True).reshape(-1, 2)
    return points if len(points) >= 3 else None


def _join_hole(outer, hole):
    """One keyhole polygon: `outer` to its point closest to `hole`, around the hole from
    its closest point back to that point, then the rest of `outer`."""
    distances = ((outer[:, None, :] - hole[None, :, :]) ** 2).sum(axis=-1)
    at_outer, at_hole = np.unravel_index(distances.argmin(), distances.shape)
    around = np.roll(hole, -at_hole, axis=0)
    return np.concatenate([outer[: at_outer + 1], around, around[:1], outer[at_outer:]], axis=0)


def create(work_dir: str = "", model: str = "", checkpoint: str = "best", min_area: int = 16):
    """The function of `cvat-cli ... --function-module semseg.labelling.cvat_function
    -p NAME=TYPE:VALUE`.

    Args:
        work_dir: a run written by train.py (default: the latest finished run under runs/).
        model: an exported model file (with its `.json` description) instead of a run.
        checkpoint: `best`, `last` or a `.keras` path, with `work_dir`.
        min_area: regions of fewer pixels are not returned.

    Raises:
        InputError: one line naming a missing run or model file.
    """
    from semseg.config.workspace import latest_run
    from semseg.predict.inference import Predictor

    if work_dir and model:
        raise InputError("give either work_dir (a trained run) or model (an exported file)")
    if min_area < 0:
        raise InputError(f"min_area must be 0 or more. Received: {min_area}")
    if model:
        predictor = Predictor.from_export(model)
    else:
        predictor = Predictor.from_work_dir(work_dir or str(latest_run()), checkpoint)
    return SegmentationFunction(predictor, min_area)
