"""Tests of the Cityscapes reader (`full_semantic/cityscapes.py`): configs `cityscapes`,
`cityscapes_categories` and MiniCity, on generated folders that hold every file type of
a real release (8-bit labelIds and labelTrainIds, 16-bit instanceIds, RGBA colour
PNGs, polygons JSON).

    .venv/bin/pytest tests/full_semantic/test_cityscapes_source.py
"""

import functools
import json
import logging

import cv2
import numpy as np
import pytest
from errors import input_error
from PIL import Image
from source_fixtures import (
    CITYSCAPES_CATEGORY_IDS,
    CITYSCAPES_TRAIN_IDS,
    cityscapes_label_ids,
    examples_by_name,
    open_source,
    pattern_image,
    read_masks,
    rectangle,
    save_png,
    write_cityscapes,
)

from full_semantic import cityscapes
from full_semantic.config import FullSemanticConfig
from full_semantic.prepare import build_dataset
from semseg.base.errors import InputError

TRAIN_ID_NAMES = [
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
]
CATEGORY_NAMES = ["void", "flat", "construction", "object", "nature", "sky", "human", "vehicle"]
SIZE = (16, 8)


open_dataset = functools.partial(open_source, "cityscapes")
read_all = read_masks


def expected_from(mapping, label_ids):
    lookup = np.full(256, 255, dtype=np.uint8)
    for label_id, class_id in mapping.items():
        lookup[label_id] = class_id
    return lookup[label_ids]


def polygons_frame_expected(class_of):
    """The polygons-only frame, drawn by hand: sky, road below, a car group with a
    license plate (not drawn), a deleted person (not drawn), out of roi, a bicycle."""
    expected = np.full((8, 16), class_of["sky"], dtype=np.uint8)
    expected[4:8, :] = class_of["road"]
    expected[3:7, 2:10] = class_of["car"]
    expected[0:2, 0:2] = class_of["out of roi"]
    expected[5:8, 10:14] = class_of["bicycle"]
    return expected


# === Happy paths ===


def test_cityscapes_config_maps_label_ids_to_the_19_train_ids(tmp_path):
    root = write_cityscapes(tmp_path / "cityscapes", polygons_only=["bochum_000000_000313"])

    builder = build_dataset("cityscapes", root, tmp_path / "data")

    metadata = builder.info.metadata
    assert metadata["class_names"] == TRAIN_ID_NAMES
    assert metadata["palette"][0] == [128, 64, 128] and metadata["palette"][18] == [119, 11, 32]
    assert metadata["source"] == "cityscapes" and metadata["ignore_index"] == 255
    train = examples_by_name(builder, "train")
    assert sorted(train) == ["aachen_000000_000019", "bochum_000000_000313"]
    frame = train["aachen_000000_000019"]
    np.testing.assert_array_equal(frame["image"], pattern_image("aachen_000000_000019", SIZE))
    # The official labelTrainIds file beside labelIds is the expected answer.
    official = np.asarray(
        Image.open(root / "gtFine/train/aachen/aachen_000000_000019_gtFine_labelTrainIds.png")
    )
    np.testing.assert_array_equal(frame["mask"][..., 0], official)
    np.testing.assert_array_equal(
        frame["mask"][..., 0], expected_from(CITYSCAPES_TRAIN_IDS, cityscapes_label_ids(SIZE))
    )
    class_of = {"sky": 10, "road": 0, "car": 13, "out of roi": 255, "bicycle": 18}
    np.testing.assert_array_equal(
        train["bochum_000000_000313"]["mask"][..., 0], polygons_frame_expected(class_of)
    )
    assert list(examples_by_name(builder, "val")) == ["frankfurt_000000_000294"]


def test_categories_config_gives_the_8_categories(tmp_path):
    root = write_cityscapes(tmp_path / "cityscapes", polygons_only=["bochum_000000_000313"])

    builder = build_dataset("cityscapes_categories", root, tmp_path / "data")

    assert builder.info.metadata["class_names"] == CATEGORY_NAMES
    train = examples_by_name(builder, "train")
    np.testing.assert_array_equal(
        train["aachen_000000_000019"]["mask"][..., 0],
        expected_from(CITYSCAPES_CATEGORY_IDS, cityscapes_label_ids(SIZE)),
    )
    class_of = {"sky": 5, "road": 1, "car": 7, "out of roi": 0, "bicycle": 7}
    np.testing.assert_array_equal(
        train["bochum_000000_000313"]["mask"][..., 0], polygons_frame_expected(class_of)
    )


def test_void_category_can_be_ignored(tmp_path):
    root = write_cityscapes(tmp_path / "cityscapes", frames={"train": ["ulm_000000_000001"]})

    dataset = open_dataset(root, class_set="categories", void_labels=["void"])

    assert dataset.class_names == CATEGORY_NAMES[1:]
    mask = read_all(dataset, "train")["ulm_000000_000001"]
    categories = expected_from(CITYSCAPES_CATEGORY_IDS, cityscapes_label_ids(SIZE))
    np.testing.assert_array_equal(mask, np.where(categories == 0, 255, categories - 1))


def test_minicity_layout_without_city_folders_and_unlabelled_test(tmp_path, caplog):
    root = write_cityscapes(
        tmp_path / "minicity",
        frames={"train": ["aachen_000000_000019", "bochum_000000_000313"], "val": ["lindau_1"]},
        city_folders=False,
        unlabelled_splits={"test": ["berlin_000000_000019", "bonn_000000_000001"]},
    )

    with caplog.at_level(logging.WARNING):
        dataset = open_dataset(root)

    assert dataset.split_names == ["train", "val"]
    assert dataset.num_examples("train") == 2
    assert any("split 'test' left out" in record.getMessage() for record in caplog.records)
    masks = read_all(dataset, "val")
    np.testing.assert_array_equal(
        masks["lindau_1"], expected_from(CITYSCAPES_TRAIN_IDS, cityscapes_label_ids(SIZE))
    )


def test_polygons_rasterised_in_file_order_with_group_names(tmp_path):
    path = tmp_path / "frame_gtFine_polygons.json"
    objects = [
        {"label": "persongroup", "polygon": rectangle(1, 1, 6, 4)},
        {"label": "rider", "polygon": rectangle(4, 2, 9, 5)},
        {"label": "polegroup", "polygon": [[0, 7], [3, 7]]},
        {"label": "ego vehicle", "polygon": []},
    ]
    path.write_text(json.dumps({"imgWidth": 12, "imgHeight": 8, "objects": objects}))

    label_ids, size = cityscapes.rasterize_polygons(path)

    expected = np.zeros((8, 12), dtype=np.uint8)
    expected[1:5, 1:7] = 24  # person
    expected[2:6, 4:10] = 25  # rider over it
    expected[7, 0:4] = 18  # polegroup, a known label of its own, as a line
    assert size == (12, 8)
    np.testing.assert_array_equal(label_ids, expected)


# === Bad input: each raises InputError naming the file and the problem ===


def test_label_id_outside_the_table(tmp_path):
    ids = cityscapes_label_ids(SIZE)
    ids[0, :3] = 40
    ids[1, 0] = 250
    root = write_cityscapes(
        tmp_path / "cs", frames={"val": ["ulm_000000_000001"]}, label_ids={"ulm_000000_000001": ids}
    )

    message = input_error(lambda: read_all(open_dataset(root), "val"))
    assert "ulm_000000_000001_gtFine_labelIds.png" in message
    assert "2 label id(s) outside the Cityscapes label table (0..33)" in message
    assert "40 in 3 pixel(s)" in message and "250 in 1 pixel(s)" in message


@pytest.mark.parametrize(
    "label, problem",
    [
        (np.full((8, 16), 26001, dtype=np.uint16), "16-bit 1-channel"),
        (np.zeros((8, 16, 3), dtype=np.uint8), "8-bit 3-channel"),
    ],
    ids=["instance_ids_16_bit", "rgb"],
)
def test_label_ids_must_be_8_bit_single_channel(tmp_path, label, problem):
    root = write_cityscapes(tmp_path / "cs", frames={"val": ["ulm_000000_000001"]})
    path = root / "gtFine/val/ulm/ulm_000000_000001_gtFine_labelIds.png"
    save_png(path, label, mode="I;16" if label.dtype == np.uint16 else None)

    message = input_error(lambda: read_all(open_dataset(root), "val"))
    assert "ulm_000000_000001_gtFine_labelIds.png" in message
    assert problem in message and "expected an 8-bit single-channel PNG" in message


def test_16_bit_image(tmp_path):
    root = write_cityscapes(tmp_path / "cs", frames={"val": ["ulm_000000_000001"]})
    image = np.zeros((8, 16, 3), dtype=np.uint16)
    path = root / "leftImg8bit/val/ulm/ulm_000000_000001_leftImg8bit.png"
    # PIL cannot write 16-bit RGB; OpenCV can.
    assert cv2.imwrite(str(path), image)

    with pytest.raises(InputError, match=r"ulm_000000_000001_leftImg8bit\.png: 16-bit 3-channel"):
        read_all(open_dataset(root), "val")


@pytest.mark.parametrize(
    "annotation, fragment",
    [
        ({"imgWidth": 16, "imgHeight": 8}, "expected a Cityscapes polygon file"),
        (
            {"imgWidth": 16, "imgHeight": 8, "objects": [{"label": "spaceship", "polygon": []}]},
            "label(s) not in the Cityscapes label table: 'spaceship'",
        ),
        (
            {"imgWidth": 16, "imgHeight": 8, "objects": [{"label": "car", "polygon": [1, 2, 3]}]},
            "object 0: polygon must be a list of [x, y] pairs",
        ),
        (
            {"imgWidth": 10, "imgHeight": 8, "objects": []},
            "is 10x8 but",
        ),
    ],
    ids=["no_objects", "unknown_label", "flat_polygon", "wrong_size"],
)
def test_malformed_polygon_file(tmp_path, annotation, fragment):
    root = write_cityscapes(
        tmp_path / "cs",
        frames={"val": ["ulm_000000_000001"]},
        polygons_only=["ulm_000000_000001"],
    )
    path = root / "gtFine/val/ulm/ulm_000000_000001_gtFine_polygons.json"
    path.write_text(json.dumps(annotation))

    with pytest.raises(InputError) as error:
        read_all(open_dataset(root), "val")

    assert "ulm_000000_000001_gtFine_polygons.json" in str(error.value)
    assert fragment in str(error.value)


def test_image_without_annotation_next_to_annotated_ones(tmp_path):
    root = write_cityscapes(tmp_path / "cs")
    save_png(
        root / "leftImg8bit/train/aachen/aachen_000001_000019_leftImg8bit.png",
        pattern_image("x", SIZE),
    )

    message = input_error(lambda: open_dataset(root))
    assert "aachen_000001_000019_leftImg8bit.png: no annotation" in message
    assert "aachen_000001_000019_gtFine_labelIds.png" in message
    assert "1 of 3 images of split 'train'" in message


def test_two_images_with_the_same_frame_name(tmp_path):
    root = write_cityscapes(tmp_path / "cs")
    save_png(
        root / "leftImg8bit/train/copy/aachen_000000_000019_leftImg8bit.png",
        pattern_image("x", SIZE),
    )

    with pytest.raises(InputError, match=r"two images with the same key 'aachen_000000_000019'"):
        open_dataset(root)


def test_missing_gtfine_names_the_zips_to_extract(tmp_path):
    root = tmp_path / "download"
    (root / "leftImg8bit" / "train").mkdir(parents=True)
    (root / "gtFine_trainvaltest.zip").write_bytes(b"")

    with pytest.raises(InputError, match=r"gtFine not found.*Extract gtFine_trainvaltest\.zip"):
        open_dataset(root)


def test_unknown_class_set_and_wrong_channels_are_config_errors():
    with pytest.raises(InputError, match=r"class_set 'parts'.*\['train_ids', 'categories'\]"):
        FullSemanticConfig(name="x", source="cityscapes", class_set="parts")
    with pytest.raises(InputError, match=r"gives images with 3 channel\(s\)"):
        FullSemanticConfig(name="x", source="cityscapes", channels=4)
