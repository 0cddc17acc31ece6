"""Binary segmentation end to end: a 2-class CVAT export -> tfds build -> train.py
--binary (one logit) -> eval.py, plus the binary metric and the mode's checks."""

import csv
import json

import keras
import numpy as np
import pytest
from commands import python
from cvat_fixtures import encode_image, write_cvat_export

from full_semantic.config import FullSemanticConfig
from full_semantic.prepare import build_dataset
from semseg.base.errors import InputError
from semseg.base.labels import IGNORE_INDEX
from semseg.config.run_config import RunConfig
from semseg.data import data
from semseg.evaluate.metrics import BinaryMeanIoU
from semseg.predict.inference import Predictor
from semseg.train.setup import binary_mode
from semseg.train.training import train

BINARY_LABELS = (("background", (0, 0, 0)), ("crack", (255, 255, 255)))
SPLITS = {"train": [f"train{index}" for index in range(8)], "val": ["val0", "val1", "val2"]}
IMAGE_SIZE = (48, 40)  # (width, height)


def write_binary_export(root, seed=0):
    """A CVAT export with two labels where the foreground is a bright bar on dark noise."""
    generator = np.random.default_rng(seed)
    width, height = IMAGE_SIZE
    class_masks, colour_masks = {}, {}
    for name in [name for names in SPLITS.values() for name in names]:
        mask = np.zeros((height, width), np.uint8)
        top, left = generator.integers(4, height // 2), generator.integers(4, width // 2)
        mask[top : top + generator.integers(6, 14), left : left + generator.integers(8, 20)] = 1
        class_masks[name] = mask
        colour_masks[name] = np.array([color for _, color in BINARY_LABELS], np.uint8)[mask]
    export = write_cvat_export(
        root,
        labels=BINARY_LABELS,
        splits=SPLITS,
        image_size=IMAGE_SIZE,
        image_extension=".png",
        masks=colour_masks,
    )
    for name, mask in class_masks.items():
        image = generator.integers(0, 80, (height, width, 3)) + 150 * mask[..., None]
        (export / "JPEGImages" / f"{name}.png").write_bytes(encode_image(image, ".png"))
    return export


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("binary")
    for name, export in (
        ("binary", write_binary_export(base / "binary_export")),
        ("three", write_cvat_export(base / "three_export")),
    ):
        build_dataset(FullSemanticConfig(name=name, source="cvat"), export, base / "tfds")
    return base / "tfds"


@pytest.mark.large
def test_binary_model_trains_and_evaluates_through_the_command_lines(data_dir, tmp_path):
    work_dir = tmp_path / "run"
    python(
        "train.py",
        "--dataset",
        "full_semantic/binary",
        "--data_dir",
        data_dir,
        "--binary",
        "--loss",
        "bce:1.0,dice:0.5",
        "--model",
        "ddrnet23_slim",
        "--image_size",
        "40",
        "48",
        "--batch_size",
        "4",
        "--epochs",
        "2",
        "--steps_per_epoch",
        "2",
        "--optimizer",
        "adamw",
        "--learning_rate",
        "0.003",
        "--work_dir",
        work_dir,
        check=True,
    )
    config = json.loads((work_dir / "config.json").read_text())
    assert config["binary"] is True and config["class_names"] == ["background", "crack"]
    model = keras.saving.load_model(work_dir / "checkpoints" / "best.keras", compile=False)
    assert model.output_shape == (None, None, None, 1)
    with open(work_dir / "history.csv") as history_file:
        history = list(csv.DictReader(history_file))
    assert len(history) == 2
    assert all(0.0 <= float(row["val_mean_iou"]) <= 1.0 for row in history)

    python("eval.py", "--work_dir", work_dir, "--split", "val", "--latency_runs", "3", check=True)
    metrics = json.loads((work_dir / "eval" / "val" / "metrics.json").read_text())
    assert metrics["num_examples"] == 3
    assert metrics["flops"] > 0 and metrics["params"]["trainable"] > 0
    assert set(metrics["per_class"]) == {"background", "crack"}
    assert 0.0 <= metrics["mIoU"] <= 1.0
    pixels = {name: row["pixels"] for name, row in metrics["per_class"].items()}
    assert pixels["crack"] > 0 and pixels["background"] > pixels["crack"]

    # Prediction is the 0.5 threshold of the sigmoid of the one logit.
    predictor = Predictor.from_work_dir(work_dir)
    builder, _ = data.load_builder("full_semantic/binary", data_dir)
    example = next(iter(builder.as_dataset(split="val").as_numpy_iterator()))
    prediction = predictor.predict(example["image"])
    logits = model.predict_on_batch(example["image"][None].astype("float32"))[0, ..., 0]
    assert set(np.unique(prediction)) <= {0, 1}
    np.testing.assert_array_equal(prediction, (logits >= 0.0).astype(np.uint8))


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, False),
        ({"binary": True}, True),
        ({"loss": "lovasz_hinge"}, True),
        ({"loss": "ce:1.0,binary_focal(gamma=1):0.5"}, True),
        ({"loss": "dice"}, False),
    ],
)
def test_binary_mode_is_asked_for_or_implied_by_a_binary_loss(data_dir, settings, expected):
    config = RunConfig(work_dir="unused", dataset="full_semantic/binary", **settings)
    _, labels = data.load_builder("full_semantic/binary", data_dir)
    assert binary_mode(config, labels) is expected


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"binary": True}, "--binary: binary segmentation needs a dataset with exactly 2 classes"),
        ({"loss": "bce"}, "--loss bce: binary segmentation needs"),
    ],
)
def test_binary_mode_needs_two_classes(data_dir, tmp_path, settings, message):
    config = RunConfig(
        work_dir=str(tmp_path / "run"),
        dataset="full_semantic/three",
        data_dir=str(data_dir),
        **settings,
    )
    with pytest.raises(InputError, match=message):
        train(config)
    assert not (tmp_path / "run" / "config.json").exists()


def test_binary_mean_iou_thresholds_the_sigmoid_and_skips_ignored_pixels():
    generator = np.random.default_rng(0)
    logits = generator.normal(0.0, 2.0, (2, 6, 7, 1)).astype("float32")
    labels = generator.integers(0, 2, (2, 6, 7)).astype("int32")
    labels[0, 0] = IGNORE_INDEX
    metric = BinaryMeanIoU()
    metric.update_state(labels[:1], logits[:1])
    metric.update_state(labels[1:], logits[1:])

    valid = labels != IGNORE_INDEX
    truth, prediction = labels[valid], (logits[..., 0] >= 0.0)[valid].astype(int)
    ious = [
        np.sum((truth == c) & (prediction == c)) / np.sum((truth == c) | (prediction == c))
        for c in (0, 1)
    ]
    assert float(metric.result()) == pytest.approx(np.mean(ious), rel=1e-6)
    restored = BinaryMeanIoU.from_config(metric.get_config())
    assert restored.threshold == 0.5 and restored.name == "mean_iou"
