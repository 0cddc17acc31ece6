"""CVAT extras of the `full_semantic` builder: `blank_missing_masks`, labelmaps with parts
and actions, binary (background + one class) exports.

    .venv/bin/pytest tests/full_semantic/test_cvat_extras.py
"""

import io
import json
import logging

import numpy as np
import pytest
from cvat_fixtures import class_index_pattern, write_cvat_export
from PIL import Image
from source_fixtures import examples_by_name

from full_semantic import cvat
from full_semantic.full_semantic_dataset_builder import Builder
from full_semantic.prepare import build_dataset
from semseg.base.errors import InputError

SIZE = (12, 8)


def config(**fields):
    return Builder.builder_config_cls(**json.loads(json.dumps({"name": "mine", **fields})))


def test_blank_missing_masks_builds_listed_images_without_mask_as_background(tmp_path, caplog):
    export_dir = write_cvat_export(tmp_path / "export", omit_masks=["b", "d"])

    with caplog.at_level(logging.WARNING):
        builder = build_dataset(
            config(source="cvat", blank_missing_masks=True), export_dir, tmp_path / "data"
        )

    train = examples_by_name(builder, "train")
    assert sorted(train) == ["a", "b", "c"]
    assert builder.info.splits["val"].num_examples == 2
    np.testing.assert_array_equal(train["a"]["mask"][..., 0], class_index_pattern(SIZE, 3))
    np.testing.assert_array_equal(train["b"]["mask"][..., 0], np.zeros((8, 12), np.uint8))
    assert train["b"]["image"].shape == (8, 12, 3)
    messages = [record.getMessage() for record in caplog.records]
    assert any(
        "1 of 3 images listed in" in message and "all-background" in message for message in messages
    ), messages


def test_blank_masks_follow_void_labels(tmp_path):
    export_dir = write_cvat_export(tmp_path / "export", omit_masks=["e"])
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    export = cvat.open_export(
        export_dir, scratch, void_labels=["background"], blank_missing_masks=True
    )

    examples = dict(export.examples("val"))
    mask = np.asarray(Image.open(io.BytesIO(examples["e"]["mask"])))
    np.testing.assert_array_equal(mask, np.full((8, 12), 255, np.uint8))


def test_blank_missing_masks_needs_a_black_class(tmp_path):
    labels = (("road", (128, 64, 128)), ("car", (64, 0, 128)))
    export_dir = write_cvat_export(tmp_path / "export", labels=labels)

    with pytest.raises(InputError, match=r"labelmap\.txt: blank_missing_masks needs a class"):
        cvat.open_export(export_dir, tmp_path, blank_missing_masks=True)


def test_labelmap_with_parts_and_actions(tmp_path):
    text = (
        "# label:color_rgb:parts:actions\n"
        "background:0,0,0::\n"
        "road:128,64,128:lane,crossing:\n"
        "car:64,0,128:wheel,door:open,close\n"
    )
    export_dir = write_cvat_export(tmp_path / "export", labelmap=text)

    builder = build_dataset(config(source="cvat"), export_dir, tmp_path / "data")

    assert builder.info.metadata["class_names"] == ["background", "road", "car"]
    for example in examples_by_name(builder, "val").values():
        np.testing.assert_array_equal(example["mask"][..., 0], class_index_pattern(SIZE, 3))


def test_binary_export_builds_as_a_two_class_set(tmp_path):
    labels = (("background", (0, 0, 0)), ("crack", (255, 255, 255)))
    export_dir = write_cvat_export(tmp_path / "export", labels=labels)

    builder = build_dataset(config(source="cvat"), export_dir, tmp_path / "data")

    assert builder.info.metadata["class_names"] == ["background", "crack"]
    assert builder.info.metadata["palette"] == [[0, 0, 0], [255, 255, 255]]
    for example in examples_by_name(builder, "train").values():
        np.testing.assert_array_equal(example["mask"][..., 0], class_index_pattern(SIZE, 2))
