"""Tests of the dataset statistics (`semseg/data/class_stats.py`): pixel counts, class
weights, and `python -m full_semantic.stats` on a built generated folder dataset.

    .venv/bin/pytest tests/full_semantic/test_stats.py
"""

import json

import numpy as np
import pytest
from commands import python
from errors import assert_one_line_error
from PIL import Image
from source_fixtures import id_pattern, write_folder

from full_semantic.prepare import build_dataset
from semseg.base.errors import InputError
from semseg.data import class_stats as stats
from semseg.data import data

SIZE = (12, 8)


def labels_of(name):
    """Class ids 0..3 of fixture image `name` (class 3 never appears), 255 in one corner."""
    labels = id_pattern(SIZE, 3, step=1 + ord(name) % 3)
    labels[:2, :3] = 255
    if name == "c":
        labels[labels == 2] = 0  # class 2 absent from image c
    return labels


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("stats")
    classes = [{"name": name} for name in ("sky", "road", "car", "boat")]
    names = ("a", "b", "c")
    root = write_folder(
        base / "mydata",
        classes=classes,
        splits={"train": ["a", "b"], "val": ["c"]},
        labels={name: labels_of(name) for name in names},
    )
    build_dataset("folder", root, base / "tfds")
    return base / "tfds"


def expected_counts(names, num_classes=4):
    counts = np.zeros(num_classes, dtype=np.int64)
    for name in names:
        values, numbers = np.unique(labels_of(name), return_counts=True)
        for value, number in zip(values, numbers):
            if value != 255:
                counts[value] += number
    return counts


def test_pixel_counts_exclude_ignored_pixels(data_dir):
    builder, _ = data.load_builder("full_semantic/folder", data_dir)

    counts = stats.pixel_counts(builder, "train")

    assert counts.dtype == np.int64 and counts.shape == (4,)
    np.testing.assert_array_equal(counts, expected_counts(["a", "b"]))
    np.testing.assert_array_equal(stats.pixel_counts(builder, "val"), expected_counts(["c"]))


def test_class_statistics_count_images_per_class(data_dir):
    builder, _ = data.load_builder("full_semantic/folder", data_dir)

    statistics = stats.class_statistics(builder, "train")

    np.testing.assert_array_equal(statistics.images, [2, 2, 2, 0])
    labelled = [int((labels_of(name) != 255).sum()) for name in ("a", "b")]
    np.testing.assert_array_equal(statistics.image_pixels, [sum(labelled)] * 3 + [0])
    assert statistics.ignored == 2 * 6 and statistics.num_images == 2
    val = stats.class_statistics(builder, "val")
    np.testing.assert_array_equal(val.images, [1, 1, 0, 0])


def test_inverse_weights_by_hand():
    weights = stats.class_weights(np.array([100, 300, 0, 600]), "inverse")

    assert weights.dtype == np.float64 and weights.shape == (4,)
    np.testing.assert_allclose(weights, [1000 / 300, 1000 / 900, 0.0, 1000 / 1800])
    np.testing.assert_allclose(np.dot([100, 300, 0, 600], weights) / 1000, 1.0)


def test_median_frequency_weights_by_hand():
    counts = np.array([100, 300, 0, 600])

    weights = stats.class_weights(counts, "median", image_pixels=np.array([1000, 500, 0, 1000]))

    # Frequencies 0.1, 0.6, -, 0.6; median 0.6; raw weights 6, 1, 0, 1; scaled by 1000 / 1500.
    np.testing.assert_allclose(weights, [4.0, 2 / 3, 0.0, 2 / 3])
    # Without per-image denominators, median frequency is inverse frequency up to scale.
    np.testing.assert_allclose(
        stats.class_weights(counts, "median"), stats.class_weights(counts, "inverse")
    )


def test_sqrt_median_weights_by_hand():
    counts = np.array([100, 300, 0, 600])

    weights = stats.class_weights(
        counts, "sqrt_median", image_pixels=np.array([1000, 500, 0, 1000])
    )

    # Raw median weights 6, 1, 0, 1; square roots sqrt(6), 1, 0, 1; scaled so that
    # the pixel-weighted mean is 1: by 1000 / (100 sqrt(6) + 900).
    scale = 1000 / (100 * np.sqrt(6) + 900)
    np.testing.assert_allclose(weights, [np.sqrt(6) * scale, scale, 0.0, scale])
    np.testing.assert_allclose(np.dot(counts, weights) / counts.sum(), 1.0)


def test_weight_errors():
    with pytest.raises(ValueError, match=r"method must be one of \('inverse', 'median', 'sqrt"):
        stats.class_weights([1, 2], "log")
    with pytest.raises(ValueError, match="non-negative"):
        stats.class_weights([1, -2])
    with pytest.raises(InputError, match="no labelled pixel"):
        stats.class_weights([0, 0, 0])


def stats_command(data_dir, output_dir, *flags):
    return python(
        "-m", "full_semantic.stats", "--dataset", "full_semantic/folder", "--data_dir", data_dir,
        "--output_dir", output_dir, *flags,
    )  # fmt: skip


def test_command_line_prints_tables_and_writes_chart_and_json(data_dir, tmp_path):
    result = stats_command(data_dir, tmp_path / "out")

    assert result.returncode == 0, result.stderr[-3000:]
    train = expected_counts(["a", "b"])
    assert "full_semantic/folder split train:" in result.stdout
    assert "full_semantic/folder split val:" in result.stdout
    road_line = [line for line in result.stdout.splitlines() if line.startswith("road ")][0]
    assert f"{train[1]:,}" in road_line
    assert "Suggested class weights (from split train):" in result.stdout
    written = json.loads((tmp_path / "out" / "class_stats.json").read_text())
    assert written["splits"]["train"]["pixels"] == train.tolist()
    assert written["splits"]["val"]["pixels"] == expected_counts(["c"]).tolist()
    np.testing.assert_allclose(
        written["class_weights"]["inverse"], stats.class_weights(train, "inverse")
    )
    chart = Image.open(tmp_path / "out" / "class_pixels.png")
    assert chart.format == "PNG" and chart.size[0] > 300


def test_command_line_error_is_one_line(data_dir, tmp_path):
    result = stats_command(data_dir, tmp_path / "out", "--split", "test")

    assert result.returncode == 1
    assert_one_line_error(result, "no split 'test'")
    assert not (tmp_path / "out").exists()
