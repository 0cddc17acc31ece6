"""Tests of the UTokyo multispectral reader (`full_semantic/utokyo.py`): configs
`utokyo_rgb`, `utokyo_thermal` and `utokyo_rgbt` on generated releases whose images are
4-channel PNGs read as RGBA (the 4th channel being thermal), and the real command lines
(`train.py`, `eval.py`) on 4- and 1-channel datasets.

    .venv/bin/pytest tests/full_semantic/test_utokyo_source.py
"""

import functools
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
from commands import evaluate, train_tiny
from errors import input_error
from PIL import Image
from source_fixtures import (
    UTOKYO_SPLITS,
    examples_by_name,
    id_pattern,
    open_source,
    read_masks,
    utokyo_image,
    write_utokyo,
)

from full_semantic import utokyo
from full_semantic.prepare import build_dataset
from semseg.base.errors import InputError
from semseg.data import data

# As the MFNet release names them (an independent copy of full_semantic/utokyo.py's).
CLASS_NAMES = "unlabelled car person bike curve car_stop guardrail color_cone bump".split()
SIZE = (20, 12)


open_release = functools.partial(open_source, "utokyo")
read_all = read_masks


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The three UTokyo configs built from one release: {config: builder}."""
    base = tmp_path_factory.mktemp("utokyo")
    root = write_utokyo(base / "ir_seg_dataset", image_size=SIZE)
    return {
        name: build_dataset(name, root, base / "data")
        for name in ("utokyo_rgb", "utokyo_thermal", "utokyo_rgbt")
    }


# === Happy paths ===


@pytest.mark.parametrize(
    "config, channels, picked",
    [
        ("utokyo_rgb", 3, slice(0, 3)),
        ("utokyo_thermal", 1, slice(3, 4)),
        ("utokyo_rgbt", 4, slice(0, 4)),
    ],
)
def test_configs_keep_rgb_thermal_or_both(built, config, channels, picked):
    builder = built[config]

    assert builder.info.features["image"].shape == (None, None, channels)
    assert builder.info.metadata["class_names"] == CLASS_NAMES
    assert builder.info.metadata["palette"][1] == [64, 0, 128]
    assert sorted(builder.info.splits) == ["test", "train", "val"]
    for split, names in UTOKYO_SPLITS.items():
        examples = examples_by_name(builder, split)
        assert sorted(examples) == sorted(names)
        for name, example in examples.items():
            np.testing.assert_array_equal(example["image"], utokyo_image(name, SIZE)[..., picked])
            np.testing.assert_array_equal(example["mask"][..., 0], id_pattern(SIZE, 9))
            assert example["daytime"].decode() == {"D": "day", "N": "night"}[name[-1]]


def test_unlabelled_can_be_made_void(tmp_path):
    root = write_utokyo(tmp_path / "ir_seg_dataset", image_size=SIZE)

    release = open_release(root, channels=1, void_labels=["unlabelled"])

    assert release.class_names == CLASS_NAMES[1:]
    raw = id_pattern(SIZE, 9)
    expected = np.where(raw == 0, 255, raw - 1)
    for mask in read_all(release, "train").values():
        np.testing.assert_array_equal(mask, expected)


def test_release_from_a_zip_and_lists_with_file_names(tmp_path):
    write_utokyo(
        tmp_path / "ir_seg_dataset",
        splits={"train": ["00001D", "00002N"]},
        list_lines={"train.txt": "00001D.png\n\n00002N.png\n"},
    )
    shutil.make_archive(str(tmp_path / "release"), "zip", tmp_path, "ir_seg_dataset")

    release = open_release(tmp_path / "release.zip", channels=4)

    assert release.split_names == ["train"]
    assert sorted(read_all(release, "train")) == ["00001D", "00002N"]


@pytest.mark.parametrize("config, channels", [("utokyo_rgbt", 4), ("utokyo_thermal", 1)])
def test_input_pipeline_takes_4_and_1_channel_images(built, config, channels):
    builder = built[config]

    batches, _ = data.train_dataset(builder, "train", (16, 24), batch_size=2, seed=1)
    images, masks = next(iter(batches))
    assert images.shape == (2, 16, 24, channels) and images.dtype == tf.float32
    assert masks.shape == (2, 16, 24)
    assert set(np.unique(masks.numpy())) <= set(range(9)) | {255}
    evaluation = next(iter(data.eval_dataset(builder, "val", (16, 24), batch_size=1)))
    assert evaluation[0].shape == (1, 16, 24, channels)


def test_split_images_back_equals_the_release(tmp_path):
    root = write_utokyo(tmp_path / "ir_seg_dataset", image_size=SIZE)

    count = utokyo.split_rgbt_folder(root / "images", tmp_path / "split", show_progress=False)

    assert count == 4
    for name in ("00001D", "00004N"):
        rgb = np.asarray(Image.open(tmp_path / "split" / "rgb" / f"{name}.png"))
        thermal = Image.open(tmp_path / "split" / "thermal" / f"{name}.png")
        assert thermal.mode == "L"
        np.testing.assert_array_equal(rgb, utokyo_image(name, SIZE)[..., :3])
        np.testing.assert_array_equal(np.asarray(thermal), utokyo_image(name, SIZE)[..., 3])


# === Bad input: each raises InputError naming the file and the problem ===


@pytest.mark.parametrize(
    "image, fragment",
    [
        (np.zeros((12, 20, 3), dtype=np.uint8), "8-bit 3-channel (PIL mode RGB) image; expected 4"),
        (np.zeros((12, 20), dtype=np.uint16), "16-bit 1-channel"),
    ],
    ids=["rgb_without_thermal", "16_bit"],
)
def test_image_must_be_8_bit_with_4_channels(tmp_path, image, fragment):
    root = write_utokyo(tmp_path / "ir_seg_dataset", images={"00002N": image})

    with pytest.raises(InputError) as error:
        read_all(open_release(root, channels=3), "train")

    assert "images/00002N.png" in str(error.value)
    assert fragment in str(error.value)


def test_label_id_outside_the_9_classes(tmp_path):
    label = id_pattern((20, 12), 9)
    label[0, 0] = 9
    label[1, :4] = 200
    root = write_utokyo(tmp_path / "ir_seg_dataset", labels={"00003D": label})

    message = input_error(lambda: read_all(open_release(root), "val"))
    assert "labels/00003D.png" in message
    assert "2 label value(s) outside the 9 classes (0..8)" in message
    assert "200 in 4 pixel(s), 9 in 1 pixel(s)" in message


def test_colour_label_is_refused(tmp_path):
    root = write_utokyo(
        tmp_path / "ir_seg_dataset", labels={"00001D": np.zeros((12, 20, 3), np.uint8)}
    )

    with pytest.raises(InputError, match=r"labels/00001D\.png: 8-bit 3-channel .*multi-channel"):
        read_all(open_release(root), "train")


def test_list_naming_a_missing_image(tmp_path):
    root = write_utokyo(
        tmp_path / "ir_seg_dataset", list_lines={"val.txt": "00003D\n00009N\n00010D\n"}
    )

    message = input_error(lambda: open_release(root))
    assert "val.txt line 2: no file in images/ for name '00009N'" in message
    assert "2 of 3 listed names are missing" in message


@pytest.mark.parametrize(
    ("release", "message"),
    [
        (
            {"splits": {"train": ["00001D", "00002X"]}},
            r"train\.txt line 2: name '00002X' does not end in D",
        ),
        ({"omit_labels": ["00004N"]}, r"images/00004N\.png: no label labels/00004N\.png"),
    ],
    ids=["name-without-day-or-night-suffix", "image-without-label"],
)
def test_release_with_a_bad_name_is_one_error(tmp_path, release, message):
    root = write_utokyo(tmp_path / "ir_seg_dataset", **release)

    with pytest.raises(InputError, match=message):
        open_release(root)


def test_release_without_lists(tmp_path):
    root = write_utokyo(tmp_path / "ir_seg_dataset", splits={})
    (root / "images").mkdir()

    with pytest.raises(InputError, match=r"train\.txt not found.*train\.txt, val\.txt, test\.txt"):
        open_release(root)


# === The command lines on 4- and 1-channel datasets ===


@pytest.mark.large
@pytest.mark.parametrize("config, channels", [("utokyo_rgbt", 4), ("utokyo_thermal", 1)])
def test_train_and_eval_command_lines(tmp_path, config, channels):
    splits = {"train": ["00001D", "00002N", "00003D", "00004N"], "val": ["00005D", "00006N"]}
    root = write_utokyo(tmp_path / "ir_seg_dataset", splits=splits, image_size=(80, 64))
    build_dataset(config, root, tmp_path / "tfds")
    work_dir = tmp_path / "run"

    train_tiny(f"full_semantic/{config}", tmp_path / "tfds", work_dir)
    # Cost and speed are measured by other tests; here only quality, by daytime too.
    result = evaluate(
        work_dir,
        "--group_by",
        "daytime",
        "--latency_runs",
        "0",
        check=True,
    )

    run_config = json.loads((work_dir / "config.json").read_text())
    assert run_config["num_channels"] == channels
    assert run_config["class_names"] == CLASS_NAMES
    assert "mIoU" in result.stdout
    metrics = json.loads((work_dir / "eval" / "val" / "metrics.json").read_text())
    assert metrics["num_examples"] == 2
    assert set(metrics["per_class"]) == set(CLASS_NAMES)
    assert sorted(metrics["groups"]) == ["day", "night"]
    assert [group["num_examples"] for group in metrics["groups"].values()] == [1, 1]
