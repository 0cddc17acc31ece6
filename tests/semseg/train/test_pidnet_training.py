"""PIDNet trained as its authors do: boundary labels, boundary loss, boundary-aware loss."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from real_data import CAMVID_DIR, reference, require_camvid

from full_semantic.prepare import build_dataset
from semseg.data.data import boundary_labels
from semseg.losses import losses

ROOT = Path(__file__).resolve().parents[3]


def numpy_boundaries(mask, edge_size=4):
    """The documented definition, pixel by pixel: right/lower neighbour differs, then a
    dilation whose window spans rows/columns i - (k - 1) // 2 .. i + k // 2."""
    height, width = mask.shape
    edges = np.zeros(mask.shape, bool)
    edges[:, :-1] |= mask[:, :-1] != mask[:, 1:]
    edges[:-1, :] |= mask[:-1, :] != mask[1:, :]
    before, after = (edge_size - 1) // 2, edge_size // 2
    result = np.zeros(mask.shape, np.float32)
    for row in range(height):
        for column in range(width):
            window = edges[
                max(row - before, 0) : row + after + 1, max(column - before, 0) : column + after + 1
            ]
            result[row, column] = float(window.any())
    return result


def test_boundary_labels_match_a_numpy_reference():
    mask = np.zeros((16, 18), np.uint8)
    mask[3:13, 4:15] = 2  # a rectangle
    mask[14:, :3] = 255  # an ignored corner
    mask[0, 17] = 1  # a one-pixel speck at the edge of the image
    expected = numpy_boundaries(mask)
    got = boundary_labels(tf.constant(mask[None]))[0].numpy()
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.float32
    # A band around the rectangle: inside it, far from the border, no boundary.
    assert got[8, 9] == 0 and got[3, 9] == 1 and got[2, 9] == 1 and got[8, 0] == 0
    assert not boundary_labels(tf.zeros((1, 8, 8), tf.uint8)).numpy().any()


def official_weighted_bce(logits, targets):
    """XuJiacong/PIDNet `weighted_bce` in numpy."""
    logits, targets = logits.reshape(-1), targets.reshape(-1)
    positives, negatives = (targets == 1).sum(), (targets == 0).sum()
    weight = np.where(targets == 1, negatives, positives) / (positives + negatives)
    bce = np.maximum(logits, 0) - logits * targets + np.log1p(np.exp(-np.abs(logits)))
    return float(np.mean(weight * bce))


def test_boundary_loss_is_the_official_weighted_bce():
    rng = np.random.default_rng(1)
    targets = (rng.random((2, 9, 11)) < 0.2).astype("float32")
    logits = rng.standard_normal((2, 9, 11, 1)).astype("float32")
    loss = losses.BoundaryLoss(coefficient=20.0)(targets, logits)
    assert float(loss) == pytest.approx(20.0 * official_weighted_bce(logits, targets), rel=1e-5)


def test_boundary_aware_loss_counts_only_confident_boundary_pixels():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, (1, 6, 6)).astype("int32")
    logits = rng.standard_normal((1, 6, 6, 3)).astype("float32")
    boundary = np.full((1, 6, 6, 1), -5.0, "float32")
    boundary[0, :2] = 5.0  # sigmoid 0.993 > 0.8 on the first two rows only
    combined = np.concatenate([logits, boundary], axis=-1)
    loss = losses.BoundaryAwareLoss(losses.CrossEntropy())(labels, combined)
    expected = losses.CrossEntropy()(labels[:, :2], logits[:, :2])
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)
    none = np.concatenate([logits, np.full_like(boundary, -5.0)], axis=-1)
    assert float(losses.BoundaryAwareLoss(losses.CrossEntropy())(labels, none)) == 0.0


@pytest.fixture(scope="module")
def camvid_data_dir(tmp_path_factory):
    from full_semantic.config import FullSemanticConfig

    require_camvid()
    data_dir = tmp_path_factory.mktemp("camvid")
    config = FullSemanticConfig(name="camvid", source="cvat", void_labels=["background"])
    build_dataset(config, CAMVID_DIR, data_dir)
    return data_dir


@pytest.mark.large
def test_pidnet_s_trains_on_camvid_with_every_loss_term(camvid_data_dir, tmp_path):
    work_dir = tmp_path / "pidnet"
    command = [
        sys.executable, "train.py", "--recipe", "recipes/camvid_pidnet_s.json",
        "--data_dir", camvid_data_dir, "--work_dir", work_dir,
        "--weights", reference("pidnet_s_cityscapes.pth"),
        "--image_size", "96", "128", "--batch_size", "2", "--epochs", "1",
        "--steps_per_epoch", "2", "--warmup_epochs", "0", "--vis_every", "0",
    ]  # fmt: skip
    result = subprocess.run(
        [str(part) for part in command], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    header, row = (work_dir / "history.csv").read_text().splitlines()[:2]
    history = dict(zip(header.split(","), row.split(",")))
    for term in ("logits_loss", "aux_logits_loss", "boundary_logits_loss", "bas_logits_loss"):
        assert np.isfinite(float(history[term])), term
        assert np.isfinite(float(history[f"val_{term}"])), term
    assert float(history["boundary_logits_loss"]) > 0
    weights = json.loads((work_dir / "weights.json").read_text())
    assert set(weights["skipped"]) == {"head_2_conv", "p_head_2_conv"}  # 19 -> 11 classes
    config = json.loads((work_dir / "config.json").read_text())
    assert config["model"] == "pidnet_s" and config["aux_weight"] == 0.4
    assert config["boundary_weight"] == 20.0 and config["bas_weight"] == 1.0
    # The checkpoint predicts with the logits first, as every run's does.
    import keras

    import models  # noqa: F401

    model = keras.saving.load_model(work_dir / "checkpoints" / "last.keras", compile=False)
    assert model.output_names[0] == "logits"
    assert model(np.zeros((1, 96, 128, 3), "float32"))[0].shape == (1, 96, 128, 11)
