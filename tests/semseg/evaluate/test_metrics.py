import numpy as np
import pytest

from semseg.base.labels import IGNORE_INDEX
from semseg.evaluate.metrics import (
    ConfusionMatrix,
    format_table,
    mean_iou_metric,
    segmentation_metrics,
)


def brute_force_iou(truth, prediction, class_id):
    valid = truth != IGNORE_INDEX
    intersection = np.sum((truth == class_id) & (prediction == class_id) & valid)
    union = np.sum(((truth == class_id) | (prediction == class_id)) & valid)
    return intersection / union if union else None


def test_confusion_matrix_matches_brute_force_and_ignores_255():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, (3, 20, 30))
    truth[0, :5] = IGNORE_INDEX
    prediction = rng.integers(0, 4, (3, 20, 30))
    confusion = ConfusionMatrix(4)
    for image_truth, image_prediction in zip(truth, prediction):
        confusion.update(image_truth, image_prediction)
    assert confusion.matrix.sum() == np.sum(truth != IGNORE_INDEX)
    metrics = segmentation_metrics(confusion.matrix, ["a", "b", "c", "d"])
    for class_id, name in enumerate("abcd"):
        assert metrics["per_class"][name]["iou"] == pytest.approx(
            brute_force_iou(truth, prediction, class_id)
        )
    valid = truth != IGNORE_INDEX
    assert metrics["aAcc"] == pytest.approx(np.mean(truth[valid] == prediction[valid]))


def test_absent_class_is_not_applicable_not_zero():
    truth = np.array([[0, 0, 1, 1]])
    prediction = np.array([[0, 0, 1, 0]])
    confusion = ConfusionMatrix(3)
    confusion.update(truth, prediction)
    metrics = segmentation_metrics(confusion.matrix, ["road", "car", "bike"])
    assert metrics["per_class"]["bike"] == {
        "iou": None,
        "precision": None,
        "recall": None,
        "f1": None,
        "pixels": 0,
    }
    # road: 2 of 3 predicted pixels right, both truth pixels found; car: 1 of 2.
    assert metrics["per_class"]["road"]["iou"] == pytest.approx(2 / 3)
    assert metrics["per_class"]["car"]["iou"] == pytest.approx(1 / 2)
    assert metrics["per_class"]["road"]["precision"] == pytest.approx(2 / 3)
    assert metrics["per_class"]["car"]["recall"] == pytest.approx(1 / 2)
    assert metrics["per_class"]["car"]["f1"] == pytest.approx(2 / 3)
    assert metrics["mIoU"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert metrics["mAcc"] == pytest.approx((1.0 + 0.5) / 2)
    assert "n/a" in format_table(metrics)


def test_predicted_but_absent_class_counts_as_zero_iou():
    confusion = ConfusionMatrix(2)
    confusion.update(np.array([0, 0]), np.array([0, 1]))
    metrics = segmentation_metrics(confusion.matrix, ["a", "b"])
    assert metrics["per_class"]["b"]["iou"] == 0.0
    assert metrics["mIoU"] == pytest.approx((0.5 + 0.0) / 2)


def test_confusion_matrix_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="same size"):
        ConfusionMatrix(2).update(np.zeros((2, 2)), np.zeros((2, 3)))


def test_keras_mean_iou_agrees_with_confusion_matrix_on_logits():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 6, 7, 3)).astype("float32")
    truth = rng.integers(0, 3, (2, 6, 7))
    truth[1, 0] = IGNORE_INDEX
    metric = mean_iou_metric(3)
    metric.update_state(truth, logits)
    confusion = ConfusionMatrix(3)
    confusion.update(truth, logits.argmax(-1))
    expected = segmentation_metrics(confusion.matrix, ["a", "b", "c"])["mIoU"]
    assert float(metric.result()) == pytest.approx(expected, abs=1e-6)
