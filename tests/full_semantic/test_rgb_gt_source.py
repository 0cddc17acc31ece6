"""The original project's layout (`full_semantic/rgb_gt.py`) and `tfds build` without
`--config` (`full_semantic/detect.py`, config `auto`).

    .venv/bin/pytest tests/full_semantic/test_rgb_gt_source.py
"""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cvat_fixtures import write_cvat_export, zip_folder
from PIL import Image
from source_fixtures import (
    ORIGINAL_SIZE,
    examples_by_name,
    mask_of,
    new_user_environment,
    write_cityscapes,
    write_folder,
    write_original,
    write_satellite,
    write_utokyo,
)

from full_semantic import detect, rgb_gt
from full_semantic.prepare import build_dataset
from semseg.base.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
SIZE = ORIGINAL_SIZE  # width, height


def test_masks_pair_with_the_longest_image_name_they_start_with():
    pairs, orphans = rgb_gt.match_masks(
        ["image_1", "image_10", "a-b", "c"],
        ["image_1_mask", "image_10_output", "a-b-gt", "c", "zzz_mask"],
    )
    assert pairs == {
        "a-b": ["a-b-gt"],
        "c": ["c"],
        "image_1": ["image_1_mask"],
        "image_10": ["image_10_output"],
    }
    assert orphans == ["zzz_mask"]


def test_the_original_zip_in_the_default_manual_dir_builds_without_a_config(tmp_path):
    (tmp_path / "manual").mkdir()
    zip_folder(write_original(tmp_path / "src"), tmp_path / "manual" / "full_semantic.zip")
    (tmp_path / "manual" / "other.zip").write_bytes(b"not ours")

    builder = build_dataset("auto", tmp_path / "manual", tmp_path / "data")

    metadata = builder.info.metadata
    assert metadata["source"] == "rgb_gt"
    assert metadata["class_names"] == ["class_0", "class_1", "class_2"]
    train, val = examples_by_name(builder, "train"), examples_by_name(builder, "val")
    assert len(train) + len(val) == 12 and len(val) >= 1
    assert not set(train) & set(val)
    np.testing.assert_array_equal(train["image_1"]["mask"][..., 0], mask_of(1))
    assert (train["image_1"]["image"] == 10).all()
    summary = repr(builder.info)
    assert summary.startswith("built full_semantic/auto (source rgb_gt): 3 classes")
    assert f"in {builder.data_path}" in summary and len(summary.splitlines()) == 3


def test_a_class_list_beside_rgb_and_gt_names_the_classes_and_colour_masks_work(tmp_path):
    root = tmp_path / "src"
    colours = [(0, 0, 0), (128, 64, 128), (64, 0, 128)]
    masks = {index: mask_of(index) for index in range(1, 5)}
    (root / "rgb").mkdir(parents=True)
    (root / "gt").mkdir()
    for index, mask in masks.items():
        Image.fromarray(np.zeros((*SIZE[::-1], 3), np.uint8)).save(root / "rgb" / f"{index}.jpg")
        Image.fromarray(np.array(colours, np.uint8)[mask]).save(root / "gt" / f"{index}_mask.png")
    (root / "labelmap.txt").write_text("background:0,0,0::\nroad:128,64,128::\ncar:64,0,128::\n")

    dataset = rgb_gt.RgbGtDataset(root)
    assert dataset.class_names == ["background", "road", "car"]
    decoded = {
        key: np.asarray(Image.open(io.BytesIO(example["mask"])))
        for split in dataset.split_names
        for key, example in dataset.examples(split)
    }
    np.testing.assert_array_equal(decoded["2"], masks[2])

    (root / "labelmap.txt").unlink()
    (root / "classes.json").write_text(json.dumps(["bg", "road", "car"]))
    assert rgb_gt.RgbGtDataset(root).class_names == ["bg", "road", "car"]


@pytest.mark.parametrize(
    "problem, message",
    [
        ("no_mask", r"rgb/image_3.png: no mask for image 'image_3' in gt/"),
        ("two_masks", r"2 masks for image 'image_2'"),
        ("no_images", r"rgb holds no image"),
    ],
)
def test_layout_mistakes_name_the_file(tmp_path, problem, message):
    root = write_original(tmp_path / "src", count=4)
    if problem == "no_mask":
        (root / "gt" / "image_3_output.png").unlink()
    elif problem == "two_masks":
        Image.fromarray(mask_of(2)).save(root / "gt" / "image_2_gt.png")
    else:
        for path in (root / "rgb").iterdir():
            path.unlink()
    with pytest.raises(InputError, match=message):
        rgb_gt.RgbGtDataset(root)


def test_every_layout_is_detected_and_an_unknown_one_lists_what_was_looked_for(tmp_path):
    write_cvat_export(tmp_path / "cvat")
    write_cityscapes(tmp_path / "cityscapes")
    write_utokyo(tmp_path / "utokyo")
    write_satellite(tmp_path / "satellite", {"t1": {"building": []}})
    write_folder(tmp_path / "folder")
    write_original(tmp_path / "rgb_gt", count=2)
    (tmp_path / "cvat_xml" / "images").mkdir(parents=True)
    (tmp_path / "cvat_xml" / "annotations.xml").write_text("<annotations/>")
    for source in detect.SIGNATURES:
        assert detect.detect_source(tmp_path / source) == (source, tmp_path / source)
    # A zip of one inside one top-level folder; a folder of a folder.
    zip_path = zip_folder(tmp_path / "cvat", tmp_path / "cvat.zip", top_level="export")
    assert detect.detect_source(zip_path) == ("cvat", zip_path)
    (tmp_path / "outer").mkdir()
    (tmp_path / "folder").rename(tmp_path / "outer" / "folder")
    assert detect.detect_source(tmp_path / "outer") == ("folder", tmp_path / "outer" / "folder")

    (tmp_path / "unknown").mkdir()
    (tmp_path / "unknown" / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match=r"unknown: no dataset layout recognised; looked for cvat"):
        detect.detect_source(tmp_path / "unknown")
    (tmp_path / "rgb_gt" / "labelmap.txt").write_text("a:0,0,0::\n")
    (tmp_path / "rgb_gt" / "SegmentationClass").mkdir()
    with pytest.raises(InputError, match=r"fits several sources \(cvat, rgb_gt\)"):
        detect.detect_source(tmp_path / "rgb_gt")


def test_tfds_build_without_arguments_as_typed(tmp_path):
    """`cd full_semantic && tfds build` with full_semantic.zip in ~/tensorflow_datasets/
    downloads/manual: builds, ends with the summary, prints no CUDA line."""
    env = new_user_environment(tmp_path, count=6)
    home = Path(env["HOME"])
    tfds_cli = Path(sys.executable).parent / "tfds"
    result = subprocess.run(
        [str(tfds_cli), "build"],
        cwd=ROOT / "full_semantic",
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        result.stdout.strip()
        .splitlines()[-3]
        .startswith(
            "built full_semantic/auto (source rgb_gt): 3 classes [class_0, class_1, class_2]"
        )
    )
    assert (home / "tensorflow_datasets" / "full_semantic" / "auto" / "1.0.0").is_dir()
    assert "cuInit" not in result.stderr and "cudart" not in result.stderr


def test_a_failed_build_leaves_nothing_in_the_data_dir(tmp_path):
    (tmp_path / "manual").mkdir()
    (tmp_path / "manual" / "notes.txt").write_text("not a dataset")
    with pytest.raises(InputError, match="no dataset layout recognised"):
        build_dataset("auto", tmp_path / "manual", tmp_path / "data")
    assert not list((tmp_path / "data").rglob("*"))
