"""Leak-free validation: near-duplicate frames across train and val, and splits by sequence."""

import json
import logging

import numpy as np
import pytest
from cvat_fixtures import write_cvat_export
from PIL import Image, ImageDraw, ImageFilter
from real_data import CAMVID_DIR as CAMVID

from full_semantic import split_leakage
from full_semantic.config import FullSemanticConfig
from full_semantic.prepare import build_dataset
from semseg.base.errors import InputError

SIZE = (96, 72)  # width, height
LABELS = (("background", (0, 0, 0)), ("thing", (200, 40, 40)))


def scene(seed, size=(160, 120)):
    """A random scene: shapes of random colours, places and sizes on a background."""
    rng = np.random.default_rng(seed)
    picture = Image.new("RGB", size, tuple(int(value) for value in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(picture)
    for _ in range(14):
        x, y = rng.integers(-20, size[0]), rng.integers(-20, size[1])
        width, height = rng.integers(8, 60, 2)
        colour = tuple(int(value) for value in rng.integers(0, 255, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((int(x), int(y), int(x + width), int(y + height)), fill=colour)
    return np.asarray(picture.filter(ImageFilter.GaussianBlur(1)))


def clip(seed, frames):
    """Frames of one camera panning slowly over one scene, with sensor noise."""
    world = scene(seed)
    rng = np.random.default_rng(seed + 1000)
    shots = []
    for index in range(frames):
        crop = world[4 : 4 + SIZE[1], 2 * index : 2 * index + SIZE[0]].astype(np.int16)
        shots.append(np.clip(crop + rng.integers(-6, 7, crop.shape), 0, 255).astype(np.uint8))
    return shots


def thumbnails(pictures):
    return {name: split_leakage.thumbnail(picture) for name, picture in pictures.items()}


def test_interleaved_frames_of_one_clip_leak_and_distinct_scenes_do_not():
    frames = {f"clip_{index:04d}": picture for index, picture in enumerate(clip(1, 24))}
    names = sorted(frames)
    train = thumbnails({name: frames[name] for name in names[0::2]})
    val = thumbnails({name: frames[name] for name in names[1::2]})
    report = split_leakage.measure(train, val)
    assert report.leaks and report.near_duplicate_share >= 0.9
    assert report.shared_sequence_share == 1.0 and report.shared_sequences == ["clip"]
    distinct = {f"scene{seed}_0001": scene(seed)[: SIZE[1], : SIZE[0]] for seed in range(24)}
    names = sorted(distinct)
    report = split_leakage.measure(
        thumbnails({name: distinct[name] for name in names[:16]}),
        thumbnails({name: distinct[name] for name in names[16:]}),
    )
    assert not report.leaks and report.near_duplicate_share <= 0.1
    assert report.shared_sequence_share == 0.0


@pytest.mark.parametrize(
    "name, sequence",
    [("0016E5_07959", "0016E5"), ("Seq05VD_f02370", "Seq05VD"), ("frame_000123", "frame"),
     ("clip-7.0042", "clip-7"), ("nodigits", None), ("1234", None)],
)  # fmt: skip
def test_sequence_of_a_name(name, sequence):
    assert split_leakage.sequence_of(name) == sequence


def test_camvid_val_leaks_and_whole_sequences_do_not():
    """The shared export: val is 101 frames of 0016E5, interleaved with 204 train frames."""
    lists = CAMVID / "ImageSets" / "Segmentation"
    splits = {split: (lists / f"{split}.txt").read_text().split() for split in ("train", "val")}
    pictures = {
        name: split_leakage.thumbnail((CAMVID / "JPEGImages" / f"{name}.jpg").read_bytes())
        for names in splits.values()
        for name in names
    }
    as_given = split_leakage.measure(
        {name: pictures[name] for name in splits["train"]},
        {name: pictures[name] for name in splits["val"]},
    )
    assert as_given.leaks and as_given.near_duplicate_share >= 0.9
    assert as_given.shared_sequences == ["0016E5"]
    for sequence in ("0006R0", "0001TP"):
        report = split_leakage.measure(
            {name: value for name, value in pictures.items() if not name.startswith(sequence)},
            {name: value for name, value in pictures.items() if name.startswith(sequence)},
        )
        assert not report.leaks and report.near_duplicate_share < 0.1, (sequence, report)


def write_clips(root, interleaved=True):
    """A CVAT export of three clips of 10 frames; val every other frame (`interleaved`)."""
    frames = {
        f"{letter}_{index:04d}": picture
        for seed, letter in enumerate("abc")
        for index, picture in enumerate(clip(seed, 10))
    }
    names = sorted(frames)
    splits = {"train": names[0::2], "val": names[1::2]} if interleaved else {"train": names}
    root = write_cvat_export(root, labels=LABELS, splits=splits, image_size=SIZE)
    for name, picture in frames.items():
        Image.fromarray(picture).save(root / "JPEGImages" / f"{name}.jpg", quality=95)
    return root


def test_a_build_whose_val_leaks_warns_in_one_line_and_records_it(tmp_path, caplog):
    export = write_clips(tmp_path / "export")
    with caplog.at_level(logging.WARNING):
        builder = build_dataset(
            FullSemanticConfig(name="clips", source="cvat"), export, tmp_path / "tfds"
        )
    warnings = [
        record.getMessage()
        for record in caplog.records
        if record.getMessage().startswith("val leaks from train")
    ]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert warnings[0].startswith("val leaks from train: 100% of the 15 val images")
    # The command that fixes it, as typed: its JSON is a valid config.
    fields = json.loads(warnings[0].split("--config '")[1].split("'")[0])
    assert FullSemanticConfig(**fields).group_by == split_leakage.SEQUENCE_PATTERN
    assert fields["name"] == "clips_grouped" and fields["source"] == "cvat"
    leakage = builder.info.metadata["split_leakage"]
    assert leakage["leaks"] and leakage["val_images"] == 15
    assert builder.info.metadata["split_groups"] is None


def test_a_build_grouped_by_sequence_does_not_leak(tmp_path, caplog):
    export = write_clips(tmp_path / "export")
    config = FullSemanticConfig(
        name="clips_grouped", source="cvat", group_by=split_leakage.SEQUENCE_PATTERN
    )
    with caplog.at_level(logging.WARNING):
        builder = build_dataset(config, export, tmp_path / "tfds")
    assert not [record for record in caplog.records if record.getMessage().startswith("val leaks")]
    groups = builder.info.metadata["split_groups"]
    assert sorted(groups["val"] + groups["train"]) == ["a", "b", "c"]
    # Val held half the frames: whole clips until it holds at least that (2 of 3).
    assert len(groups["val"]) == 2 and len(groups["train"]) == 1
    leakage = builder.info.metadata["split_leakage"]
    assert not leakage["leaks"] and leakage["shared_sequence_share"] == 0.0
    splits = builder.info.splits
    assert splits["train"].num_examples + splits["val"].num_examples == 30
    # Chosen by name, the same on every rebuild; or given.
    config = FullSemanticConfig(
        name="clips_b", source="cvat", group_by=r"^([a-z])_", val_groups=("b",)
    )
    builder = build_dataset(config, export, tmp_path / "tfds")
    assert builder.info.metadata["split_groups"]["val"] == ["b"]
    assert builder.info.splits["val"].num_examples == 10


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"group_by": "^(["}, "is not a regex"),
        ({"group_by": "^x_"}, "does not match example"),
        ({"group_by": "_(0)"}, "finds one group"),
        ({"group_by": "^([a-z])_", "val_groups": ["z"]}, r"val_groups \['z'\] are not groups"),
        ({"val_groups": ["a"]}, "val_groups needs group_by"),
    ],
)
def test_grouping_mistakes_are_one_line(tmp_path, fields, message):
    export = write_clips(tmp_path / "export", interleaved=False)
    with pytest.raises(InputError, match=message):
        config = FullSemanticConfig(name="bad", source="cvat", **fields)
        build_dataset(config, export, tmp_path / "tfds")
    assert not (tmp_path / "tfds" / "full_semantic" / "bad").exists() or not list(
        (tmp_path / "tfds" / "full_semantic" / "bad").rglob("dataset_info.json")
    )


def test_train_records_and_eval_prints_the_leak_figure(tmp_path):
    from commands import TINY_RUN, python

    export = write_clips(tmp_path / "export")
    build_dataset(FullSemanticConfig(name="clips", source="cvat"), export, tmp_path / "tfds")
    work_dir = tmp_path / "run"
    arguments = ["--dataset", "full_semantic/clips", "--data_dir", tmp_path / "tfds"]
    result = python("train.py", *arguments, "--work_dir", work_dir, "--model", "ddrnet_lite",
                    *TINY_RUN, "--steps_per_epoch", "48")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "100% of its 15 val images are near-duplicates of train images" in result.stderr
    config = json.loads((work_dir / "config.json").read_text())
    assert config["dataset_build"]["split_leakage"]["leaks"] is True
    result = python("eval.py", "--work_dir", work_dir, "--split", "val", "--latency_runs", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        "split val: 100% of its 15 images are near-duplicates of train images, 100% share a "
        "sequence with train: this mIoU flatters the model" in result.stdout
    )
