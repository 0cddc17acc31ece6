"""Segmentation metrics from a confusion matrix accumulated over a whole split.

`ConfusionMatrix` holds one `(C, C)` int64 matrix (rows truth, columns
prediction), so memory stays constant however many images are evaluated.
"""

import keras
import numpy as np
from keras import ops

from semseg.base.labels import IGNORE_INDEX


def mean_iou_metric(num_classes, name="mean_iou"):
    """Keras streaming mIoU on logits for `model.fit` validation (255 ignored)."""
    return keras.metrics.MeanIoU(
        num_classes=num_classes, ignore_class=IGNORE_INDEX, sparse_y_pred=False, name=name
    )


@keras.saving.register_keras_serializable(package="semseg")
class BinaryMeanIoU(keras.metrics.MeanIoU):
    """Streaming mIoU of background (0) and foreground (1) for a one-logit model.

    The logit is turned into a class by `sigmoid(logit) >= threshold` (as the
    `Predictor` does); pixels
    labelled `IGNORE_INDEX` are skipped.

    Args:
        threshold: float in (0, 1), the foreground probability threshold.
        name: str, the metric name (`mean_iou`, like the multi-class metric, so
            the monitored `val_mean_iou` is the same key).
        dtype: the metric's dtype.
    """

    def __init__(self, threshold=0.5, name="mean_iou", dtype=None):
        super().__init__(
            num_classes=2, ignore_class=IGNORE_INDEX, sparse_y_pred=True, name=name, dtype=dtype
        )
        self.threshold = float(threshold)

    def update_state(self, y_true, y_pred, sample_weight=None):
        probability = ops.sigmoid(ops.cast(y_pred, "float32"))[..., 0]
        prediction = ops.cast(probability >= self.threshold, "int32")
        return super().update_state(y_true, prediction, sample_weight)

    def get_config(self):
        return {"threshold": self.threshold, "name": self.name, "dtype": self.dtype}


class ConfusionMatrix:
    """Accumulates `truth x prediction` pixel counts.

    Args:
        num_classes: number of classes C.
    """

    def __init__(self, num_classes):
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, truth, prediction):
        """Adds one image (or batch) of integer class ids of equal shape.

        Pixels whose truth is `IGNORE_INDEX` (or any id outside `0..C-1`) are skipped.
        """
        truth = np.asarray(truth).reshape(-1).astype(np.int64)
        prediction = np.asarray(prediction).reshape(-1).astype(np.int64)
        if truth.shape != prediction.shape:
            raise ValueError(
                f"truth and prediction must have the same size. Received: {truth.size} and "
                f"{prediction.size} pixels"
            )
        valid = (truth >= 0) & (truth < self.num_classes) & (truth != IGNORE_INDEX)
        counts = np.bincount(
            truth[valid] * self.num_classes + prediction[valid], minlength=self.num_classes**2
        )
        self.matrix += counts[: self.num_classes**2].reshape(self.num_classes, self.num_classes)


def _divide(numerator, denominator):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.maximum(denominator, 1), np.nan)


def _mean(values):
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else None


def _value(number):
    return None if np.isnan(number) else float(number)


def segmentation_metrics(matrix, class_names):
    """mIoU, mAcc, aAcc and per-class IoU / precision / recall / F1.

    A class absent from both truth and prediction has no IoU: it is reported as
    `None` (n/a) and left out of the means, rather than counted as 0. A class
    that is predicted but never present in the truth has IoU 0.

    Args:
        matrix: int `(C, C)` confusion matrix, rows truth, columns prediction.
        class_names: C class names.

    Returns:
        dict with `mIoU`, `mAcc`, `aAcc` (fractions in 0..1 or `None`) and
        `per_class` `{name: {iou, precision, recall, f1, pixels}}`.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    true_positive = np.diag(matrix)
    truth_pixels = matrix.sum(axis=1)
    predicted_pixels = matrix.sum(axis=0)
    iou = _divide(true_positive, truth_pixels + predicted_pixels - true_positive)
    precision = _divide(true_positive, predicted_pixels)
    recall = _divide(true_positive, truth_pixels)
    f1 = _divide(2 * true_positive, truth_pixels + predicted_pixels)
    per_class = {
        name: {
            "iou": _value(iou[index]),
            "precision": _value(precision[index]),
            "recall": _value(recall[index]),
            "f1": _value(f1[index]),
            "pixels": int(truth_pixels[index]),
        }
        for index, name in enumerate(class_names)
    }
    total = matrix.sum()
    return {
        "mIoU": _mean(iou),
        "mAcc": _mean(recall),
        "aAcc": float(true_positive.sum() / total) if total else None,
        "per_class": per_class,
    }


def format_table(metrics):
    """The per-class table and the means as aligned plain text (also valid Markdown)."""

    def cell(value):
        return "n/a" if value is None else f"{100 * value:.2f}"

    names = list(metrics["per_class"])
    width = max([len("class")] + [len(name) for name in names])
    lines = [
        f"| {'class':<{width}} |    IoU | Precision | Recall |     F1 |",
        f"|{'-' * (width + 2)}|-------:|----------:|-------:|-------:|",
    ]
    for name in names:
        row = metrics["per_class"][name]
        lines.append(
            f"| {name:<{width}} | {cell(row['iou']):>6} | {cell(row['precision']):>9} "
            f"| {cell(row['recall']):>6} | {cell(row['f1']):>6} |"
        )
    lines.append("")
    lines.append(
        f"mIoU {cell(metrics['mIoU'])}  mAcc {cell(metrics['mAcc'])}  "
        f"aAcc {cell(metrics['aAcc'])}  (percent)"
    )
    return "\n".join(lines)
