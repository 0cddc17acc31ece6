"""Tests of the plain-folder reader (`full_semantic/folder.py`), config `folder` and JSON
configs with 1 or 4 image channels.

    .venv/bin/pytest tests/full_semantic/test_folder_source.py
"""

import functools
import io
import json

import numpy as np
import pytest
from errors import input_error
from PIL import Image
from source_fixtures import (
    FOLDER_CLASSES,
    examples_by_name,
    id_pattern,
    open_source,
    pattern_image,
    write_folder,
)

from full_semantic.config import FullSemanticConfig
from full_semantic.full_semantic_dataset_builder import Builder
from full_semantic.prepare import build_dataset
from semseg.base.errors import InputError

SIZE = (12, 8)


open_dataset = functools.partial(open_source, "folder")


def read_all(dataset, split):
    decoded = {}
    for key, example in dataset.examples(split):
        image = example["image"]
        if isinstance(image, bytes):
            image = np.asarray(Image.open(io.BytesIO(image)))
        decoded[key] = (image, np.asarray(Image.open(io.BytesIO(example["mask"]))))
    return decoded


def test_folder_config_reads_index_labels_and_splits(tmp_path):
    root = write_folder(tmp_path / "mydata", image_extension=".png")

    builder = build_dataset("folder", root, tmp_path / "data")

    metadata = builder.info.metadata
    assert metadata["class_names"] == ["background", "road", "car"]
    assert metadata["palette"] == [[0, 0, 0], [128, 64, 128], [64, 0, 128]]
    assert metadata["source"] == "folder"
    train = examples_by_name(builder, "train")
    assert sorted(train) == ["a", "b"]
    np.testing.assert_array_equal(train["a"]["image"], pattern_image("a", SIZE))
    np.testing.assert_array_equal(train["b"]["mask"][..., 0], id_pattern(SIZE, 3))
    assert list(examples_by_name(builder, "val")) == ["c"]


def test_paletted_labels_give_indices_and_ignore_index_becomes_255(tmp_path):
    labels = id_pattern(SIZE, 3)
    labels[0, :5] = 7
    paletted = Image.fromarray(labels, mode="P")
    paletted.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [9] * (3 * 253))
    root = write_folder(
        tmp_path / "mydata",
        classes_json={"classes": ["background", "road", "car"], "ignore_index": 7},
        labels={"a": np.asarray(paletted)},
    )
    paletted.save(root / "labels" / "a.png")

    dataset = open_dataset(root)

    assert dataset.palette[0] == [0, 0, 0]  # default palette for classes without colour
    mask = read_all(dataset, "train")["a"][1]
    expected = id_pattern(SIZE, 3)
    expected[0, :5] = 255
    np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize("channels", [1, 4])
def test_one_and_four_channel_images(tmp_path, channels):
    root = write_folder(tmp_path / "mydata", channels=channels, splits=None, image_extension=".png")
    config = FullSemanticConfig(name=f"mine{channels}", source="folder", channels=channels)

    builder = build_dataset(config, root, tmp_path / "data")

    assert builder.info.features["image"].shape == (None, None, channels)
    assert list(builder.info.splits) == ["train"]
    train = examples_by_name(builder, "train")
    assert sorted(train) == ["a", "b", "c"]
    np.testing.assert_array_equal(train["c"]["image"], pattern_image("c", SIZE, channels))


def test_grey_and_opaque_rgba_images_become_rgb(tmp_path):
    grey = pattern_image("a", SIZE, 1)[..., 0]
    rgba = np.concatenate([pattern_image("b", SIZE), np.full((8, 12, 1), 255, np.uint8)], -1)
    root = write_folder(tmp_path / "mydata", images={"a": grey, "b": rgba}, image_extension=".png")

    decoded = read_all(open_dataset(root), "train")

    np.testing.assert_array_equal(decoded["a"][0], np.repeat(grey[..., None], 3, axis=-1))
    np.testing.assert_array_equal(decoded["b"][0], rgba[..., :3])


def test_nested_names(tmp_path):
    root = write_folder(tmp_path / "mydata", splits={"train": ["city1/x", "city2/x"]})

    decoded = read_all(open_dataset(root), "train")

    assert sorted(decoded) == ["city1/x", "city2/x"]


# === Bad input: each raises InputError naming the file and the problem ===


def test_label_value_outside_the_classes(tmp_path):
    labels = id_pattern(SIZE, 3)
    labels[2, 2] = 3
    labels[3, :2] = 254
    root = write_folder(tmp_path / "mydata", labels={"b": labels})

    message = input_error(lambda: read_all(open_dataset(root), "train"))
    assert "labels/b.png" in message
    assert "2 label value(s) outside the 3 classes (0..2)" in message
    assert "254 in 2 pixel(s), 3 in 1 pixel(s)" in message


@pytest.mark.parametrize(
    "label, fragment",
    [
        (np.zeros((8, 12), np.uint16), "16-bit 1-channel (PIL mode I;16) image is 16- or 32-bit"),
        (np.zeros((8, 12, 3), np.uint8), "8-bit 3-channel (PIL mode RGB) image is multi-channel"),
    ],
    ids=["16_bit", "rgb"],
)
def test_label_must_be_8_bit_single_channel(tmp_path, label, fragment):
    root = write_folder(tmp_path / "mydata")
    mode = "I;16" if label.dtype == np.uint16 else None
    Image.fromarray(label, mode=mode).save(root / "labels" / "c.png")

    with pytest.raises(InputError) as error:
        read_all(open_dataset(root), "val")

    assert "labels/c.png" in str(error.value) and fragment in str(error.value)


def test_wrong_channel_images(tmp_path):
    alpha = np.concatenate([pattern_image("a", SIZE), np.zeros((8, 12, 1), np.uint8)], -1)
    root = write_folder(tmp_path / "mydata", images={"a": alpha}, image_extension=".png")
    with pytest.raises(InputError, match=r"images/a\.png: .*non-opaque alpha.*\"channels\": 4"):
        read_all(open_dataset(root), "train")

    root = write_folder(tmp_path / "rgb", image_extension=".png")
    with pytest.raises(InputError, match=r"images/a\.png: 8-bit 3-channel .*expected 1-channel"):
        read_all(open_dataset(root, channels=1), "train")


def test_split_list_naming_a_missing_image(tmp_path):
    root = write_folder(tmp_path / "mydata")
    (root / "splits" / "test.txt").write_text("a\nzzz\n")

    with pytest.raises(InputError, match=r"splits/test\.txt line 2: no file in images/ .*'zzz'"):
        open_dataset(root)


def test_image_without_label(tmp_path):
    root = write_folder(tmp_path / "mydata", omit_labels=["b"])

    with pytest.raises(InputError, match=r"images/b\.jpg: no label labels/b\.png"):
        open_dataset(root)


def test_two_images_with_the_same_key(tmp_path):
    root = write_folder(tmp_path / "mydata")
    Image.fromarray(pattern_image("a", SIZE)).save(root / "images" / "a.png")

    with pytest.raises(InputError, match=r"two images with the same key 'a'"):
        open_dataset(root)


@pytest.mark.parametrize(
    "classes_json, fragment",
    [
        ([], "expected a non-empty list of classes"),
        ([{"name": "a"}, {"name": "a"}], "class 1: name 'a' is already class 0"),
        ([{"name": "a", "color": [1, 2]}], "color must be [r, g, b]"),
        ({"classes": ["a", "b"], "ignore_index": 1}, "ignore_index 1 must be in 2..255"),
        ({"labels": ["a"]}, "expected a list of classes or an object with 'classes'"),
    ],
    ids=["empty", "duplicate", "colour", "ignore_in_classes", "wrong_key"],
)
def test_malformed_classes_json(tmp_path, classes_json, fragment):
    root = write_folder(tmp_path / "mydata", classes_json=classes_json)

    with pytest.raises(InputError) as error:
        open_dataset(root)

    assert "classes.json" in str(error.value) and fragment in str(error.value)


def test_json_config_fields():
    config = Builder.builder_config_cls(
        **json.loads('{"name": "nir", "source": "folder", "channels": 4}')
    )
    assert config.channels == 4 and config.class_set == ""
    with pytest.raises(InputError, match=r"source 'folder' gives images with 1 or 3 or 4"):
        FullSemanticConfig(name="x", source="folder", channels=2)
    with pytest.raises(InputError, match=r"blank_missing_masks applies to source 'cvat' only"):
        FullSemanticConfig(name="x", source="folder", blank_missing_masks=True)
    with pytest.raises(InputError, match=r"class_set 'categories' .*expected none"):
        FullSemanticConfig(name="x", source="folder", class_set="categories")


def test_default_classes_colours_come_from_the_default_palette(tmp_path):
    classes = [{"name": name} for name, _ in zip(["a", "b", "c"], FOLDER_CLASSES)]
    root = write_folder(tmp_path / "mydata", classes=classes)

    assert open_dataset(root).palette == [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
