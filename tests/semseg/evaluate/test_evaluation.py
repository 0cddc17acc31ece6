"""Evaluation: exact metrics, groups, best/worst ranking, TTA, sliding windows, reports."""

import json

import cv2
import keras
import numpy as np
import pytest

from semseg.base.errors import InputError
from semseg.base.labels import IGNORE_INDEX, LabelSpec
from semseg.evaluate.eval_report import write_report
from semseg.evaluate.evaluation import (
    EvaluationResult,
    evaluate,
    folder_examples,
    image_score,
    warn_if_rebuilt,
)
from semseg.predict.inference import Predictor

LABELS = LabelSpec(["road", "car", "sky"], [[128, 64, 128], [0, 0, 142], [70, 130, 180]])


def pointwise_predictor(image_size=(16, 16), channels=3):
    """A Predictor whose model looks at each pixel alone (1x1 convolutions): it is
    flip-equivariant and needs no context, so TTA and sliding windows must not change it."""
    inputs = keras.Input((None, None, channels))
    hidden = keras.layers.Conv2D(8, 1, activation="tanh")(keras.layers.Rescaling(1 / 255)(inputs))
    logits = keras.layers.Conv2D(3, 1, name="logits")(hidden)
    keras.utils.set_random_seed(0)
    return Predictor(keras.Model(inputs, logits), LABELS, image_size, channels)


def test_image_score_is_mean_iou_over_present_classes():
    truth = np.array([[0, 0, 1, IGNORE_INDEX]])
    prediction = np.array([[0, 1, 1, 2]])
    # road: 1 / 2, car: 1 / 2; sky absent from the labelled pixels.
    assert image_score(truth, prediction, 3) == pytest.approx(0.5)
    assert image_score(np.full((2, 2), IGNORE_INDEX), np.zeros((2, 2)), 3) is None


class FixedPredictor:
    """Stands in for a Predictor: returns a stored prediction per image."""

    labels = LABELS

    def __init__(self, predictions):
        self.predictions = predictions

    def predict(self, image):
        return self.predictions[int(image[0, 0, 0])]


def random_examples(count=6, seed=0):
    rng = np.random.default_rng(seed)
    examples, predictions = [], {}
    for index in range(count):
        truth = rng.integers(0, 2, (10, 12)).astype(np.uint8)  # sky (2) absent
        truth[:2] = IGNORE_INDEX
        prediction = truth.copy()
        # The first 2 * index columns are wrong, so each image is worse than the last.
        prediction[:, : 2 * index] = 1 - truth[:, : 2 * index]
        if index == 5:
            prediction[5, 11] = 2  # sky predicted but absent from every truth
        image = np.full((10, 12, 3), index, dtype=np.uint8)
        group = "day" if index % 2 else "night"
        examples.append({"image": image, "mask": truth, "file_name": f"f{index}", "group": group})
        predictions[index] = prediction
    return examples, predictions


def numpy_metrics(truths, predictions, num_classes=3):
    """Independent per-class IoU / precision / recall straight from pixel comparisons."""
    truth = np.concatenate([item.reshape(-1) for item in truths])
    prediction = np.concatenate([item.reshape(-1) for item in predictions])
    valid = truth != IGNORE_INDEX
    truth, prediction = truth[valid], prediction[valid]
    result = {}
    for class_id in range(num_classes):
        true_positive = np.sum((truth == class_id) & (prediction == class_id))
        in_truth, predicted = np.sum(truth == class_id), np.sum(prediction == class_id)
        union = in_truth + predicted - true_positive
        result[class_id] = {
            "iou": true_positive / union if union else None,
            "precision": true_positive / predicted if predicted else None,
            "recall": true_positive / in_truth if in_truth else None,
        }
    accuracy = np.mean(truth == prediction)
    return result, accuracy


def test_metrics_and_groups_equal_an_independent_numpy_computation():
    examples, predictions = random_examples()
    result = evaluate(FixedPredictor(predictions), examples, len(examples), num_vis=2)
    expected, accuracy = numpy_metrics(
        [example["mask"] for example in examples], list(predictions.values())
    )
    metrics = result.metrics
    for class_id, name in enumerate(LABELS.class_names):
        for key in ("iou", "precision", "recall"):
            assert metrics["per_class"][name][key] == pytest.approx(expected[class_id][key])
    assert metrics["per_class"]["sky"]["recall"] is None  # absent from the truth
    assert metrics["aAcc"] == pytest.approx(accuracy)
    ious = [value["iou"] for value in expected.values() if value["iou"] is not None]
    assert metrics["mIoU"] == pytest.approx(np.mean(ious))
    assert metrics["num_examples"] == 6
    for group, parity in (("day", 1), ("night", 0)):
        indices = [index for index in range(6) if index % 2 == parity]
        group_expected, _ = numpy_metrics(
            [examples[index]["mask"] for index in indices], [predictions[i] for i in indices]
        )
        assert metrics["groups"][group]["num_examples"] == 3
        assert metrics["groups"][group]["per_class"]["car"]["iou"] == pytest.approx(
            group_expected[1]["iou"]
        )
    # More wrong pixels for higher indices: f0 is the best image, f5 the worst.
    assert [item.file_name for item in result.best] == ["f0", "f1"]
    assert [item.file_name for item in result.worst] == ["f5", "f4"]
    assert result.best[0].score == 1.0


def test_flip_tta_keeps_the_result_of_a_flip_equivariant_model():
    predictor = pointwise_predictor()
    rng = np.random.default_rng(1)
    asymmetric = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    symmetric = np.concatenate([asymmetric[:, :8], asymmetric[:, :8][:, ::-1]], axis=1)
    for image in (symmetric, asymmetric):
        plain = predictor.probabilities(image)
        flipped = predictor.probabilities(image, flip=True)
        np.testing.assert_allclose(plain, flipped, atol=1e-6)
        np.testing.assert_array_equal(predictor.predict(image), predictor.predict_augmented(image))


def test_sliding_window_covers_every_pixel_of_an_image_twice_the_crop():
    predictor = pointwise_predictor(image_size=(8, 8))
    image = np.random.default_rng(2).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    windows = predictor._slide_logits(image.astype(np.float32), crop=(8, 8), stride=(5, 5))
    whole = predictor._logits(image[None].astype(np.float32)).numpy()[0]
    # Overlaps are averaged, so a context-free model gives exactly the whole-image logits.
    np.testing.assert_allclose(windows, whole, atol=1e-5)
    slid = predictor.probabilities(image, mode="slide", crop=(8, 8), stride=(5, 5))
    assert slid.shape == (16, 16, 3)
    np.testing.assert_allclose(slid.sum(-1), 1.0, atol=1e-5)
    small = predictor._slide_logits(image[:5, :6].astype(np.float32), (8, 8), (5, 5))
    np.testing.assert_allclose(small, whole[:5, :6], atol=1e-5)


def test_multi_scale_probabilities_are_an_average():
    predictor = pointwise_predictor()
    image = np.random.default_rng(3).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    averaged = predictor.probabilities(image, scales=(0.5, 1.0))
    single = [predictor.probabilities(image, scales=(scale,)) for scale in (0.5, 1.0)]
    np.testing.assert_allclose(averaged, (single[0] + single[1]) / 2, atol=1e-6)


def test_folder_examples_read_id_and_colour_masks(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    ids = np.array([[0, 1, 2, IGNORE_INDEX]] * 3, dtype=np.uint8)
    cv2.imwrite(str(images / "a.png"), np.zeros((3, 4, 3), np.uint8))
    cv2.imwrite(str(images / "b.jpg"), np.zeros((3, 4, 3), np.uint8))
    cv2.imwrite(str(masks / "a.png"), ids)
    colors = np.array(LABELS.palette + [[0, 0, 0]], dtype=np.uint8)[np.minimum(ids, 3)]
    cv2.imwrite(str(masks / "b.png"), cv2.cvtColor(colors, cv2.COLOR_RGB2BGR))
    examples, total = folder_examples(images, masks, LABELS)
    decoded = list(examples)
    assert total == 2 and [item["file_name"] for item in decoded] == ["a", "b"]
    for item in decoded:
        np.testing.assert_array_equal(item["mask"], ids)
    cv2.imwrite(str(masks / "b.png"), np.full((3, 4, 3), 7, np.uint8))
    with pytest.raises(InputError, match=r"b.png: 1 colour\(s\) not in the dataset palette"):
        list(folder_examples(images, masks, LABELS)[0])
    (masks / "b.png").unlink()
    with pytest.raises(InputError, match="no mask PNG for 1 image"):
        folder_examples(images, masks, LABELS)


def test_report_files(tmp_path):
    examples, predictions = random_examples()
    result = evaluate(FixedPredictor(predictions), examples, num_vis=2)
    result.metrics.update(split="val", group_by="daytime")
    write_report(result, tmp_path, LABELS, visualize=True)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["groups"]) == {"day", "night"}
    report = (tmp_path / "report.md").read_text()
    assert "## daytime = day (3 images)" in report and "| car" in report
    rows = (tmp_path / "confusion_matrix.csv").read_text().splitlines()
    assert rows[0] == "truth\\prediction,road,car,sky"
    counts = np.array([[int(value) for value in row.split(",")[1:]] for row in rows[1:]])
    np.testing.assert_array_equal(counts, result.confusion)
    for name in ("confusion_matrix.png", "per_class_iou.png"):
        assert cv2.imread(str(tmp_path / name)) is not None
    panels = sorted(path.name for path in (tmp_path / "vis").glob("*.png"))
    assert panels == ["best_01_f0.png", "best_02_f1.png", "worst_01_f5.png", "worst_02_f4.png"]
    assert isinstance(result, EvaluationResult)


def test_a_rebuilt_dataset_is_a_warning_naming_both_fingerprints(caplog):
    trained_on = {"name": "d/1.0.0", "version_dir": "/old/d", "source_fingerprint": "sha256:aa"}
    same = dict(trained_on, version_dir="/moved/d")
    rebuilt = dict(trained_on, source_fingerprint="sha256:bb")

    with caplog.at_level("WARNING", logger="semseg.evaluate.evaluation"):
        assert not warn_if_rebuilt(trained_on, same)
        assert not warn_if_rebuilt(None, rebuilt)  # a run from before the record
        assert not warn_if_rebuilt(trained_on, dict(rebuilt, source_fingerprint=None))
        assert caplog.records == []
        assert warn_if_rebuilt(trained_on, rebuilt)

    (record,) = caplog.records
    assert record.levelname == "WARNING"
    for fragment in ("sha256:bb now", "sha256:aa at training", "/old/d"):
        assert fragment in record.getMessage()
