"""Tests of the AIHub satellite reader (`full_semantic/satellite.py`), config `satellite`,
on generated GeoJSON labels with slightly negative and out-of-image coordinates.

    .venv/bin/pytest tests/full_semantic/test_satellite_source.py
"""

import functools
import json
import shutil

import numpy as np
import pytest
from errors import input_error
from PIL import Image
from source_fixtures import (
    SATELLITE_TILES,
    building_feature,
    coords,
    examples_by_name,
    open_source,
    pattern_image,
    read_masks,
    write_satellite,
)

from full_semantic.prepare import build_dataset
from semseg.base.errors import InputError

SIZE = (16, 12)
TILE = "BLD00001_PS3_K3A_NIA0001"


open_dataset = functools.partial(open_source, "satellite")


def read_all(dataset, split="train"):
    return read_masks(dataset, split)


def expected_first_tile():
    """`SATELLITE_TILES[TILE]` drawn by hand on 16x12 pixels: a building from
    (-2.8e-14, -2.8e-14) to (6, 5), a building from x=10 to 1030.5 (past the edge) and
    y=6 to 40, and a road band y=4..7 from x=-20 to 20, drawn over both."""
    expected = np.zeros((12, 16), dtype=np.uint8)
    expected[0:6, 0:7] = 1
    expected[6:12, 10:16] = 1
    expected[4:8, :] = 2
    return expected


def test_polygons_become_background_building_road_with_road_on_top(tmp_path):
    root = write_satellite(
        tmp_path / "satellite",
        SATELLITE_TILES,
        image_size=SIZE,
        splits={"train": [TILE, "BLD00002_PS3_K3A_NIA0002"], "val": ["BLD00003_PS3_K3A_NIA0003"]},
    )

    builder = build_dataset("satellite", root, tmp_path / "data")

    metadata = builder.info.metadata
    assert metadata["class_names"] == ["background", "building", "road"]
    assert metadata["source"] == "satellite"
    train = examples_by_name(builder, "train")
    np.testing.assert_array_equal(train[TILE]["image"], pattern_image(TILE, SIZE))
    np.testing.assert_array_equal(train[TILE]["mask"][..., 0], expected_first_tile())
    # Only EMPTY buildings and no road file: all background.
    assert not train["BLD00002_PS3_K3A_NIA0002"]["mask"].any()
    # No building file, one road.
    expected_val = np.zeros((12, 16), dtype=np.uint8)
    expected_val[2:10, 2:6] = 2
    val = examples_by_name(builder, "val")
    np.testing.assert_array_equal(val["BLD00003_PS3_K3A_NIA0003"]["mask"][..., 0], expected_val)


def test_without_split_lists_every_image_is_train(tmp_path):
    root = write_satellite(tmp_path / "satellite", SATELLITE_TILES, image_size=SIZE)

    dataset = open_dataset(root)

    assert dataset.split_names == ["train"]
    masks = read_all(dataset)
    assert sorted(masks) == sorted(SATELLITE_TILES)
    np.testing.assert_array_equal(masks[TILE], expected_first_tile())


def test_road_drawn_over_building_whatever_the_file_holds(tmp_path):
    # One file holding both a road and a building, the road listed first.
    features = [
        building_feature(f"{TILE}.png", road=coords([(0, 0), (15, 0), (15, 3), (0, 3)])),
        building_feature(f"{TILE}.png", building=coords([(2, 0), (8, 0), (8, 8), (2, 8)])),
    ]
    root = write_satellite(tmp_path / "satellite", {TILE: {"building": features}}, image_size=SIZE)

    mask = read_all(open_dataset(root))[TILE]

    expected = np.zeros((12, 16), dtype=np.uint8)
    expected[0:9, 2:9] = 1
    expected[0:4, :] = 2
    np.testing.assert_array_equal(mask, expected)


def test_huge_coordinates_are_clipped(tmp_path):
    far = coords([(-1e12, -1e12), (1e12, -1e12), (1e12, 1e12), (-1e12, 1e12)])
    root = write_satellite(
        tmp_path / "satellite",
        {TILE: {"road": [building_feature(f"{TILE}.png", road=far)]}},
        image_size=SIZE,
    )

    np.testing.assert_array_equal(read_all(open_dataset(root))[TILE], np.full((12, 16), 2))


def test_background_can_be_void(tmp_path):
    root = write_satellite(tmp_path / "satellite", SATELLITE_TILES, image_size=SIZE)

    dataset = open_dataset(root, void_labels=["background"])

    assert dataset.class_names == ["building", "road"]
    expected = expected_first_tile().astype(np.int64) - 1
    np.testing.assert_array_equal(read_all(dataset)[TILE], np.where(expected < 0, 255, expected))


# === Bad input: each raises InputError naming the file and the problem ===


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("1,2,3,4,5", "5 values, an odd number"),
        ("1,2,three,4,5,6", "value 3 ('three') is not a number"),
        ("1,2,nan,4,5,6", "value 3 ('nan') is not a number"),
        (["1", "2"], "expected a string 'x,y,x,y,...' or 'EMPTY'"),
    ],
    ids=["odd", "word", "nan", "list"],
)
def test_malformed_coordinate_string(tmp_path, value, fragment):
    feature = building_feature(f"{TILE}.png", road="EMPTY")
    feature["properties"]["building_imcoords"] = value
    root = write_satellite(
        tmp_path / "satellite",
        {TILE: {"building": [building_feature(f"{TILE}.png"), feature]}},
        image_size=SIZE,
    )

    message = input_error(lambda: read_all(open_dataset(root)))
    assert f"labels/building/{TILE}.json: feature 1: properties.building_imcoords" in message
    assert fragment in message


@pytest.mark.parametrize(
    "content, fragment",
    [
        ('{"type": "FeatureCollection"}', "no 'features' list"),
        ("[1, 2]", "no 'features' list"),
        ("{not json", "not a JSON file"),
        ('{"features": [{"type": "Feature"}]}', "feature 0 has no 'properties' object"),
    ],
    ids=["no_features", "list", "not_json", "no_properties"],
)
def test_malformed_label_file(tmp_path, content, fragment):
    root = write_satellite(
        tmp_path / "satellite",
        {TILE: {}},
        image_size=SIZE,
        raw_labels={f"labels/road/{TILE}.json": content},
    )

    with pytest.raises(InputError) as error:
        read_all(open_dataset(root))

    assert f"labels/road/{TILE}.json" in str(error.value)
    assert fragment in str(error.value)


def test_label_file_of_another_image(tmp_path):
    features = [building_feature("BLD09999_PS3_K3A_NIA9999.png", building="EMPTY")]
    root = write_satellite(tmp_path / "satellite", {TILE: {"building": features}}, image_size=SIZE)

    with pytest.raises(InputError, match=r"image_id 'BLD09999_PS3_K3A_NIA9999\.png'"):
        read_all(open_dataset(root))


def test_split_list_naming_a_missing_image(tmp_path):
    root = write_satellite(
        tmp_path / "satellite",
        SATELLITE_TILES,
        image_size=SIZE,
        splits={"train": [TILE], "val": ["BLD00003_PS3_K3A_NIA0003", "BLD00404_PS3_K3A_NIA0404"]},
    )

    message = input_error(lambda: open_dataset(root))
    assert (
        "splits/val.txt line 2: no file in images/ for name 'BLD00404_PS3_K3A_NIA0404'" in message
    )


def test_two_images_with_the_same_key(tmp_path):
    root = write_satellite(tmp_path / "satellite", SATELLITE_TILES, image_size=SIZE)
    Image.fromarray(pattern_image("x", SIZE)).save(root / "images" / f"{TILE}.jpg")

    with pytest.raises(InputError) as error:
        open_dataset(root)

    assert f"images/{TILE}.jpg" in str(error.value) and f"images/{TILE}.png" in str(error.value)
    assert f"two images with the same key '{TILE}'" in str(error.value)


def test_16_bit_tile(tmp_path):
    root = write_satellite(tmp_path / "satellite", SATELLITE_TILES, image_size=SIZE)
    Image.fromarray(np.zeros((12, 16), np.uint16), mode="I;16").save(
        root / "images" / f"{TILE}.png"
    )

    with pytest.raises(InputError, match=rf"images/{TILE}\.png: 16-bit 1-channel"):
        read_all(open_dataset(root))


def test_zip_error_messages_name_the_zip(tmp_path):
    content = json.dumps({"type": "FeatureCollection"})
    write_satellite(
        tmp_path / "satellite",
        {TILE: {}},
        image_size=SIZE,
        raw_labels={f"labels/road/{TILE}.json": content},
    )
    shutil.make_archive(str(tmp_path / "aihub"), "zip", tmp_path, "satellite")

    with pytest.raises(InputError, match=rf"labels/road/{TILE}\.json \(in .*aihub\.zip\)"):
        read_all(open_dataset(tmp_path / "aihub.zip"))
