"""Builds the real CamVid CVAT export (`../shared/data/camvid_cvat`) with `full_semantic`.

The export is built once per session in-process and once with the `tfds build`
command users type. A missing export fails the tests: it is part of the test setup.

    .venv/bin/pytest tests/full_semantic/test_camvid_build.py
"""

import json
import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds
from commands import tfds_build
from PIL import Image
from real_data import CAMVID_DIR, require_camvid

from full_semantic.config import FullSemanticConfig
from full_semantic.prepare import build_dataset
from semseg.base.labels import IGNORE_INDEX

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[2]
CAMVID_CONFIG = {"name": "camvid", "source": "cvat", "void_labels": ["background"]}
CAMVID_CLASSES = (
    "sky building pole road sidewalk tree signsymbol fence car pedestrian bicyclist".split()
)
BACKGROUND = (0, 0, 0)
ROAD = (128, 64, 128)


@pytest.fixture(scope="module")
def camvid_builder(tmp_path_factory):
    """CamVid built in-process into a temporary data_dir, reloaded from disk."""
    require_camvid()
    data_dir = tmp_path_factory.mktemp("camvid_in_process")
    build_dataset(FullSemanticConfig(**CAMVID_CONFIG), CAMVID_DIR, data_dir)
    return tfds.builder_from_directory(data_dir / "full_semantic" / "camvid" / "1.0.0")


@pytest.fixture(scope="module")
def camvid_cli_build(tmp_path_factory):
    """`tfds build` of CamVid into a temporary data_dir: `(completed process, data_dir)`."""
    require_camvid()
    data_dir = tmp_path_factory.mktemp("camvid_cli")
    result = tfds_build(
        "--config",
        json.dumps(CAMVID_CONFIG),
        "--manual_dir",
        CAMVID_DIR,
        "--data_dir",
        data_dir,
        timeout=600,
    )
    return result, data_dir


def pick_mask_with(colors):
    """First train name whose colour mask holds every colour of `colors`, with its RGB mask."""
    names = (CAMVID_DIR / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    for name in names:
        mask_path = CAMVID_DIR / "SegmentationClass" / f"{name}.png"
        rgb = np.asarray(Image.open(mask_path).convert("RGB"))
        if all((rgb == color).all(axis=-1).any() for color in colors):
            return name, rgb
    pytest.fail(f"no CamVid train mask holds all of {colors}")


def decoded_example(builder, split, name):
    dataset = builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()})
    dataset = dataset.filter(lambda example: example["file_name"] == name)
    (example,) = list(tfds.as_numpy(dataset))
    return example


def test_camvid_export_is_present():
    require_camvid()


def test_camvid_splits_and_classes(camvid_builder):
    info = camvid_builder.info
    assert info.splits["train"].num_examples == 367
    assert info.splits["val"].num_examples == 101
    assert info.metadata["class_names"] == CAMVID_CLASSES
    assert len(info.metadata["palette"]) == 11
    assert info.metadata["palette"][CAMVID_CLASSES.index("road")] == list(ROAD)
    assert info.metadata["ignore_index"] == IGNORE_INDEX
    assert info.metadata["source"] == "cvat"


def test_camvid_mask_pixels_decode_to_class_ids(camvid_builder):
    name, rgb = pick_mask_with([ROAD, BACKGROUND])
    road_row, road_column = np.argwhere((rgb == ROAD).all(axis=-1))[0]
    void_row, void_column = np.argwhere((rgb == BACKGROUND).all(axis=-1))[0]

    example = decoded_example(camvid_builder, "train", name)

    mask = example["mask"][..., 0]
    assert mask.shape == (360, 480)
    assert mask[road_row, road_column] == CAMVID_CLASSES.index("road")
    assert mask[void_row, void_column] == IGNORE_INDEX
    # The whole mask, by a plain per-colour comparison.
    expected = np.full(rgb.shape[:2], -1)
    expected[(rgb == BACKGROUND).all(axis=-1)] = IGNORE_INDEX
    for class_id, color in enumerate(camvid_builder.info.metadata["palette"]):
        expected[(rgb == color).all(axis=-1)] = class_id
    np.testing.assert_array_equal(mask, expected)
    # The JPEG is stored as it is in the export.
    assert example["image"] == (CAMVID_DIR / "JPEGImages" / f"{name}.jpg").read_bytes()


def test_camvid_tfds_build_command(camvid_cli_build):
    result, data_dir = camvid_cli_build
    assert result.returncode == 0, result.stderr[-3000:]
    # CamVid's val is 101 frames of 0016E5 interleaved with 204 train frames: one line says so.
    output = (result.stdout + result.stderr).splitlines()  # tfds logs to stdout
    leak_lines = [line for line in output if "val leaks from train" in line]
    assert len(leak_lines) == 1
    share = int(leak_lines[0].split("val leaks from train: ")[1].split("%")[0])
    assert share >= 90 and "of the 101 val images" in leak_lines[0]
    assert "share a sequence with train (0016E5)" in leak_lines[0]
    builder = tfds.builder_from_directory(data_dir / "full_semantic" / "camvid" / "1.0.0")
    assert builder.info.splits["train"].num_examples == 367
    assert builder.info.splits["val"].num_examples == 101
    assert builder.info.metadata["class_names"] == CAMVID_CLASSES


def test_camvid_grouped_by_sequence_has_a_val_that_does_not_leak(tmp_path, caplog):
    """The fix the warning gives: whole sequences on each side of the split."""
    require_camvid()
    config = FullSemanticConfig(
        **{**CAMVID_CONFIG, "name": "camvid_grouped"}, group_by=r"^(.*?)[_\-. ]*f?\d+$"
    )
    builder = build_dataset(config, CAMVID_DIR, tmp_path)
    assert "val leaks from train" not in caplog.text
    groups = builder.info.metadata["split_groups"]
    assert sorted(groups["train"] + groups["val"]) == ["0001TP", "0006R0", "0016E5"]
    leakage = builder.info.metadata["split_leakage"]
    assert not leakage["leaks"] and leakage["shared_sequence_share"] == 0.0
    total = sum(builder.info.splits[split].num_examples for split in ("train", "val"))
    assert total == 468
