"""Tests of the CVAT reader (`full_semantic/cvat.py`) and the `full_semantic` builder.

Every fixture is a tiny export written into `tmp_path` by `cvat_fixtures`.

    .venv/bin/pytest tests/full_semantic/test_cvat_source.py
"""

import io
import json
import logging
import os
import sys
import tempfile
import time
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from commands import tfds_build
from cvat_fixtures import (
    DEFAULT_LABELS,
    class_index_pattern,
    image_pattern,
    write_cvat_export,
    zip_folder,
)
from errors import assert_one_line_error, input_error
from PIL import Image

from full_semantic import build_errors, cvat
from full_semantic.config import FullSemanticConfig
from full_semantic.fingerprint import source_fingerprint, source_stat
from full_semantic.full_semantic_dataset_builder import Builder
from full_semantic.prepare import build_dataset
from semseg.base import files
from semseg.base.errors import InputError
from semseg.base.labels import IGNORE_INDEX


def open_export(manual_dir, tmp_path, void_labels=()):
    scratch_dir = tmp_path / "scratch"
    scratch_dir.mkdir(exist_ok=True)
    return cvat.open_export(manual_dir, scratch_dir, void_labels)


def read_all(export):
    """Decodes every example: {split: {key: (image, class_ids)}}."""
    decoded = {}
    for split in export.split_names:
        decoded[split] = {}
        for key, example in export.examples(split):
            image = example["image"]
            if isinstance(image, bytes):
                image = np.asarray(Image.open(io.BytesIO(image)))
            mask = np.asarray(Image.open(io.BytesIO(example["mask"])))
            assert example["file_name"] == key
            decoded[split][key] = (image, mask)
    return decoded


def build(manual_dir, data_dir, config="cvat"):
    return build_dataset(config, manual_dir, data_dir)


def as_arrays(builder, split):
    return {
        example["file_name"].decode(): example
        for example in tfds.as_numpy(builder.as_dataset(split=split))
    }


# === Happy paths ===


def test_reader_maps_colours_to_labelmap_ids(tmp_path):
    export = open_export(write_cvat_export(tmp_path / "export", image_size=(12, 8)), tmp_path)

    assert export.class_names == ["background", "road", "car"]
    assert export.palette == [[0, 0, 0], [128, 64, 128], [64, 0, 128]]
    assert export.split_names == ["train", "val"]
    decoded = read_all(export)
    assert sorted(decoded["train"]) == ["a", "b", "c"]
    assert sorted(decoded["val"]) == ["d", "e"]
    expected = class_index_pattern((12, 8), 3)
    for image, mask in decoded["train"].values():
        assert image.shape == (8, 12, 3)
        np.testing.assert_array_equal(mask, expected)


def test_lone_default_list_becomes_train(tmp_path):
    export_dir = write_cvat_export(tmp_path / "export", splits={"default": ["a", "b"]})

    export = open_export(export_dir, tmp_path)

    assert export.split_names == ["train"]
    assert export.num_examples("train") == 2


def test_default_list_next_to_others_keeps_its_name(tmp_path):
    export_dir = write_cvat_export(tmp_path / "export", splits={"default": ["a"], "val": ["b"]})

    assert open_export(export_dir, tmp_path).split_names == ["default", "val"]


def test_png_and_upper_case_extensions_in_jpegimages(tmp_path):
    export_dir = write_cvat_export(
        tmp_path / "export",
        splits={"train": ["a", "b", "c"]},
        image_extensions={"a": ".png", "b": ".JPG", "c": ".bmp"},
    )

    decoded = read_all(open_export(export_dir, tmp_path))

    assert sorted(decoded["train"]) == ["a", "b", "c"]
    np.testing.assert_array_equal(decoded["train"]["a"][0], image_pattern("a", (12, 8)))
    np.testing.assert_array_equal(decoded["train"]["c"][0], image_pattern("c", (12, 8)))


def test_photo_with_an_exif_orientation_is_read_upright_like_its_mask(tmp_path):
    # A phone photo stored sideways (EXIF orientation 6: turn 90 degrees clockwise to
    # show): CVAT shows it upright, 12x8, and the mask is drawn on that view.
    export_dir = write_cvat_export(tmp_path / "export", splits={"train": ["a"]}, image_size=(12, 8))
    upright = image_pattern("a", (12, 8))
    stored = Image.fromarray(np.rot90(upright, 1))  # 8x12, as the sensor wrote it
    exif = stored.getexif()
    exif[0x0112] = 6
    stored.save(export_dir / "JPEGImages" / "a.png", exif=exif)
    (export_dir / "JPEGImages" / "a.jpg").unlink()

    image, class_ids = read_all(open_export(export_dir, tmp_path))["train"]["a"]

    np.testing.assert_array_equal(image, upright)
    np.testing.assert_array_equal(class_ids, class_index_pattern((12, 8), 3))


def test_missing_image_is_skipped_with_one_warning_per_split(tmp_path, caplog):
    export_dir = write_cvat_export(
        tmp_path / "export",
        splits={"train": ["a", "b", "c", "d"], "val": ["e"]},
        omit_images=["b", "c"],
        omit_masks=["b"],
    )

    with caplog.at_level(logging.WARNING):
        export = open_export(export_dir, tmp_path)

    assert export.num_examples("train") == 2
    assert export.num_examples("val") == 1
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1, warnings
    assert "skipped 2 of 4 names" in warnings[0]
    assert "ImageSets/Segmentation/train.txt" in warnings[0]
    assert "no image in JPEGImages/" in warnings[0]
    assert "first: b, c" in warnings[0]


def test_a_transparent_png_image_is_read_as_cvat_shows_it_without_alpha(tmp_path):
    export_dir = write_cvat_export(tmp_path / "export", splits={"train": ["a"]})
    rgb = image_pattern("a", (12, 8))
    alpha = np.full((8, 12, 1), 255, np.uint8)
    alpha[:4] = 0  # the top half transparent
    Image.fromarray(np.concatenate([rgb, alpha], axis=-1)).save(export_dir / "JPEGImages" / "a.png")
    (export_dir / "JPEGImages" / "a.jpg").unlink()

    image, _ = read_all(open_export(export_dir, tmp_path))["train"]["a"]

    np.testing.assert_array_equal(image, rgb)


def test_rgba_and_paletted_masks_are_read_as_rgb(tmp_path):
    colours = np.array([color for _, color in DEFAULT_LABELS], dtype=np.uint8)
    indices = class_index_pattern((12, 8), 3).astype(np.uint8)
    rgba = np.concatenate([colours[indices], np.full((8, 12, 1), 255, np.uint8)], axis=-1)
    export_dir = write_cvat_export(
        tmp_path / "export", splits={"train": ["a", "b"]}, masks={"a": rgba}
    )
    paletted = Image.fromarray(indices, mode="P")
    paletted.putpalette(colours.flatten().tolist())
    paletted.save(export_dir / "SegmentationClass" / "b.png")

    decoded = read_all(open_export(export_dir, tmp_path))

    for name in ("a", "b"):
        np.testing.assert_array_equal(decoded["train"][name][1], indices)


@pytest.mark.parametrize("top_level", [None, "task_7"], ids=["at_root", "in_top_folder"])
def test_zip_export(tmp_path, top_level):
    export_dir = write_cvat_export(tmp_path / "export")
    zip_path = zip_folder(export_dir, tmp_path / "export.zip", top_level=top_level)

    export = open_export(zip_path, tmp_path)

    assert export.split_names == ["train", "val"]
    assert sorted(read_all(export)["train"]) == ["a", "b", "c"]


def test_folder_holding_one_zip(tmp_path):
    export_dir = write_cvat_export(tmp_path / "export")
    (tmp_path / "download").mkdir()
    zip_folder(export_dir, tmp_path / "download" / "task_7_export.zip", top_level="task_7")

    export = open_export(tmp_path / "download", tmp_path)

    assert export.num_examples("train") == 3


def test_zip_error_messages_name_the_zip(tmp_path):
    export_dir = write_cvat_export(tmp_path / "export", omit_masks=["c"])
    zip_path = zip_folder(export_dir, tmp_path / "broken.zip")

    with pytest.raises(InputError, match=r"JPEGImages/c\.jpg \(in .*broken\.zip\)"):
        open_export(zip_path, tmp_path)


def test_builder_writes_examples_from_a_zip(tmp_path):
    export_dir = write_cvat_export(tmp_path / "export", image_extensions={"a": ".png"})
    zip_path = zip_folder(export_dir, tmp_path / "export.zip", top_level="export")

    builder = build(zip_path, tmp_path / "data")

    train = as_arrays(builder, "train")
    assert sorted(train) == ["a", "b", "c"]
    np.testing.assert_array_equal(train["a"]["image"], image_pattern("a", (12, 8)))
    np.testing.assert_array_equal(train["a"]["mask"][..., 0], class_index_pattern((12, 8), 3))
    assert builder.info.splits["val"].num_examples == 2


def test_void_labels_become_ignore_and_metadata_is_read_back(tmp_path):
    labels = (("background", (0, 0, 0)), ("road", (128, 64, 128)), ("car", (64, 0, 128)))
    export_dir = write_cvat_export(tmp_path / "export", labels=labels)
    config = FullSemanticConfig(**json.loads('{"name": "mine", "void_labels": ["road"]}'))

    build(export_dir, tmp_path / "data", config=config)

    reloaded = tfds.builder_from_directory(tmp_path / "data" / "full_semantic" / "mine" / "1.0.0")
    metadata = reloaded.info.metadata
    assert metadata["class_names"] == ["background", "car"]
    assert metadata["palette"] == [[0, 0, 0], [64, 0, 128]]
    assert metadata["ignore_index"] == IGNORE_INDEX
    assert metadata["source"] == "cvat"
    indices = class_index_pattern((12, 8), 3)
    expected = np.choose(indices, [0, IGNORE_INDEX, 1])
    for example in as_arrays(reloaded, "train").values():
        np.testing.assert_array_equal(example["mask"][..., 0], expected)


def test_json_config_normalises_void_labels_to_a_tuple():
    # `tfds build --config '{...}'` calls exactly this.
    config = Builder.builder_config_cls(
        **json.loads('{"name": "camvid", "source": "cvat", "void_labels": ["background"]}')
    )

    assert isinstance(config, FullSemanticConfig)
    assert config.void_labels == ("background",)


def test_json_config_with_a_misspelled_field_names_it():
    with pytest.raises(InputError, match=r"unknown field\(s\) \['void_label'\]"):
        Builder.builder_config_cls(name="camvid", source="cvat", void_label=["background"])


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"void_labels": 5}, "void_labels must be a list of class names"),
        ({"void_labels": "background"}, "void_labels must be a list of class names"),
        ({"name": 7}, "name must be a string. Received: name=7"),
        ({"channels": "three"}, "gives images with 3 channel"),
        ({"blank_missing_masks": "yes"}, "blank_missing_masks must be true or false"),
    ],
)
def test_json_config_values_of_the_wrong_type_are_one_input_error(fields, message):
    with pytest.raises(InputError, match=message):
        Builder.builder_config_cls(**{"name": "camvid", "source": "cvat", **fields})


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/abs", ".hidden", "a/b", "", "..", "c d"])
def test_json_config_name_is_a_plain_folder_name(name):
    with pytest.raises(InputError, match="a config name is letters, digits"):
        Builder.builder_config_cls(name=name, source="cvat")


def test_tfds_build_with_a_climbing_config_name_writes_nothing(tmp_path):
    data_dir = tmp_path / "a" / "b" / "data"
    result = tfds_build(
        *["--config", '{"name": "../../escaped", "source": "cvat"}', "--data_dir", data_dir],
        *["--manual_dir", tmp_path],
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "a config name is letters" in result.stderr.strip().splitlines()[-1]
    assert sorted(path.name for path in tmp_path.rglob("*")) == []


# === Bad input: each raises InputError naming the file and the problem ===


def test_unknown_mask_colour(tmp_path):
    mask = np.zeros((8, 12, 3), dtype=np.uint8)
    mask[0, :3] = (1, 2, 3)
    mask[1, :1] = (9, 9, 9)
    export_dir = write_cvat_export(tmp_path / "export", masks={"b": mask})
    export = open_export(export_dir, tmp_path)

    message = input_error(lambda: read_all(export))
    assert "SegmentationClass/b.png" in message
    assert "2 colour(s) not in labelmap.txt (4 pixels)" in message
    assert "(1, 2, 3) in 3 pixel(s)" in message
    assert "(9, 9, 9) in 1 pixel(s)" in message


def test_image_and_mask_of_different_sizes(tmp_path):
    mask = np.zeros((8, 10, 3), dtype=np.uint8)
    export_dir = write_cvat_export(tmp_path / "export", image_size=(12, 8), masks={"c": mask})

    message = input_error(lambda: read_all(open_export(export_dir, tmp_path)))
    assert "SegmentationClass/c.png is 10x8" in message
    assert "JPEGImages/c.jpg is 12x8" in message


def test_listed_image_without_mask(tmp_path):
    export_dir = write_cvat_export(tmp_path / "export", omit_masks=["d"])

    message = input_error(lambda: open_export(export_dir, tmp_path))
    assert "JPEGImages/d.jpg" in message
    assert "no mask" in message
    assert "SegmentationClass/d.png" in message
    assert "ImageSets/Segmentation/val.txt" in message


@pytest.mark.parametrize(
    "bad_line",
    ["road:128,64::", "road:128,64,300::", "road;128,64,128", ":1,2,3::", "road:a,b,c::"],
)
def test_malformed_labelmap_line(tmp_path, bad_line):
    text = f"# label:color_rgb:parts:actions\nbackground:0,0,0::\n\n{bad_line}\n"
    export_dir = write_cvat_export(tmp_path / "export", labelmap=text)

    message = input_error(lambda: open_export(export_dir, tmp_path))
    assert "labelmap.txt line 4" in message
    assert repr(bad_line) in message


def test_duplicate_labelmap_colour(tmp_path):
    text = "background:0,0,0::\nroad:128,64,128::\nlane:128,64,128::\n"
    export_dir = write_cvat_export(tmp_path / "export", labelmap=text)

    with pytest.raises(InputError, match=r"labelmap\.txt line 3: colour \(128, 64, 128\)"):
        open_export(export_dir, tmp_path)


@pytest.mark.parametrize(
    "member", ["../evil.txt", "/tmp/evil.txt", "export/../../evil.txt", "C:/evil.txt"]
)
def test_zip_slip_member_is_refused_before_extraction(tmp_path, member):
    export_dir = write_cvat_export(tmp_path / "export")
    zip_path = zip_folder(export_dir, tmp_path / "evil.zip", extra_members={member: b"x"})
    scratch_dir = tmp_path / "scratch"
    scratch_dir.mkdir()

    message = input_error(lambda: cvat.open_export(zip_path, scratch_dir))
    assert "evil.zip" in message
    assert repr(member) in message
    assert "outside" in message
    assert list(scratch_dir.iterdir()) == []


@pytest.mark.parametrize("broken", ["image", "mask"])
def test_corrupt_image_or_mask(tmp_path, broken):
    export_dir = write_cvat_export(
        tmp_path / "export",
        corrupt_images=["e"] if broken == "image" else [],
        corrupt_masks=["e"] if broken == "mask" else [],
    )

    with pytest.raises(InputError) as error:
        read_all(open_export(export_dir, tmp_path))

    path = "JPEGImages/e.jpg" if broken == "image" else "SegmentationClass/e.png"
    assert path in str(error.value)
    assert "cannot decode image" in str(error.value)


@pytest.mark.parametrize("broken", ["image", "mask"])
def test_a_16_bit_image_or_mask_is_refused_not_clipped(tmp_path, broken):
    export_dir = write_cvat_export(tmp_path / "export", image_extensions={"e": ".png"})
    path = export_dir / ("JPEGImages/e.png" if broken == "image" else "SegmentationClass/e.png")
    # A 16-bit grey PNG of the same size (PIL mode I;16): as RGB it would be 255 everywhere.
    Image.fromarray(np.full((8, 12), 40000, np.uint16)).save(path)

    with pytest.raises(InputError, match="16-bit 1-channel .*expected 8-bit pixels") as error:
        read_all(open_export(export_dir, tmp_path))
    assert path.relative_to(export_dir).as_posix() in str(error.value)


def test_missing_labelmap(tmp_path):
    export_dir = write_cvat_export(tmp_path / "export", omit_labelmap=True)

    with pytest.raises(InputError, match=r"labelmap\.txt not found"):
        open_export(export_dir, tmp_path)


def test_no_split_lists(tmp_path):
    export_dir = write_cvat_export(tmp_path / "export", splits={})

    with pytest.raises(InputError, match=r"ImageSets/Segmentation holds no split list"):
        open_export(export_dir, tmp_path)


def test_invalid_split_list_name(tmp_path):
    export_dir = write_cvat_export(tmp_path / "export", splits={"my-split": ["a"]})

    with pytest.raises(InputError, match=r"my-split\.txt: 'my-split' is not a valid split name"):
        open_export(export_dir, tmp_path)


def test_name_listed_twice(tmp_path):
    export_dir = write_cvat_export(tmp_path / "export", splits={"train": ["a", "b", "a"]})

    with pytest.raises(InputError, match=r"train\.txt line 3: name 'a' is already listed"):
        open_export(export_dir, tmp_path)


def test_unknown_void_label(tmp_path):
    export_dir = write_cvat_export(tmp_path / "export")

    with pytest.raises(InputError) as error:
        open_export(export_dir, tmp_path, void_labels=["unlabelled"])

    assert "labelmap.txt" in str(error.value)
    assert "'unlabelled'" in str(error.value)


def test_a_zip_bomb_or_a_zip_larger_than_the_free_space_is_refused(tmp_path, monkeypatch):
    from full_semantic import archives

    export_dir = write_cvat_export(tmp_path / "export")
    scratch_dir = tmp_path / "scratch"
    scratch_dir.mkdir()
    bomb = zip_folder(export_dir, tmp_path / "bomb.zip")
    with zipfile.ZipFile(bomb, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("JPEGImages/zeros.jpg", bytes(16 * 2**20))  # 16 MiB -> ~16 KiB
    with pytest.raises(InputError, match=r"bomb.zip: member 'JPEGImages/zeros.jpg' inflates"):
        cvat.open_export(bomb, scratch_dir)
    assert list(scratch_dir.iterdir()) == []

    plain = zip_folder(export_dir, tmp_path / "plain.zip")
    usage = archives.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(
        archives.shutil, "disk_usage", lambda path: usage._replace(free=archives.FREE_SPACE_MARGIN)
    )
    with pytest.raises(InputError, match=r"plain.zip: unpacks to 0.00 GiB but .* GiB free"):
        cvat.open_export(plain, scratch_dir)
    assert list(scratch_dir.iterdir()) == []


def test_only_the_members_the_reader_reads_are_extracted(tmp_path, monkeypatch):
    from full_semantic import archives

    export_dir = write_cvat_export(tmp_path / "export")
    scratch_dir = tmp_path / "scratch"
    scratch_dir.mkdir()
    # A task export often holds more than masks: the source video, notes, other formats.
    # A 64 MiB video beside them, with only 1 MiB of free space above the margin.
    extra = {"task_1/video.mp4": bytes(64 * 2**20), "task_1/annotations.xml": b"<annotations/>"}
    zip_path = zip_folder(export_dir, tmp_path / "task.zip", top_level="task_1")
    with zipfile.ZipFile(zip_path, "a", compression=zipfile.ZIP_STORED) as archive:
        for member, data in extra.items():
            archive.writestr(member, data)
    usage = archives.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(
        archives.shutil,
        "disk_usage",
        lambda path: usage._replace(free=archives.FREE_SPACE_MARGIN + 2**20),
    )

    export = cvat.open_export(zip_path, scratch_dir)

    extracted = scratch_dir / "extracted" / "task_1"
    assert sorted(path.name for path in extracted.iterdir()) == [
        "ImageSets", "JPEGImages", "SegmentationClass", "labelmap.txt",
    ]  # fmt: skip
    assert sorted(read_all(export)["train"]) == ["a", "b", "c"]


def test_a_rebuild_after_the_export_changed_stops_instead_of_reusing_the_old_build(tmp_path):
    export_dir = write_cvat_export(tmp_path / "export")
    data_dir = tmp_path / "data"
    first = build(export_dir, data_dir)
    assert first.info.metadata["source_fingerprint"] == source_fingerprint(export_dir)
    assert first.info.metadata["source_stat"] == source_stat(export_dir)
    build(export_dir, data_dir)  # unchanged: reused

    labelmap = export_dir / "labelmap.txt"
    os.utime(labelmap)  # touched, same contents (a re-export, a copy): still reused
    assert build(export_dir, data_dir).info.metadata["source_stat"] != source_stat(export_dir)
    labelmap.write_text(labelmap.read_text().replace("car", "vehicle"))
    with pytest.raises(InputError, match=r"cvat/1.0.0: built from .*export before it changed; "):
        build(export_dir, data_dir)
    # What --overwrite does: the old build goes, the new one has the fixed class.
    first.data_path.rmtree()
    assert "vehicle" in build(export_dir, data_dir).info.metadata["class_names"]


def test_text_files_are_utf8_with_or_without_a_byte_order_mark(tmp_path):
    export_dir = write_cvat_export(tmp_path / "export")
    labelmap = export_dir / "labelmap.txt"
    labelmap.write_bytes(b"\xef\xbb\xbf" + labelmap.read_bytes())  # Windows Notepad's BOM
    assert open_export(export_dir, tmp_path).class_names == ["background", "road", "car"]
    labelmap.write_bytes("background:0,0,0::\nstraße:128,64,128::\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"labelmap.txt: not UTF-8 text \(byte 0xdf at offset"):
        open_export(export_dir, tmp_path)
    labelmap.write_text("background:0,0,0::\n")
    (export_dir / "ImageSets" / "Segmentation" / "train.txt").write_bytes(b"a\n\xff\n")
    with pytest.raises(InputError, match=r"train.txt: not UTF-8 text \(byte 0xff at offset 2\)"):
        open_export(export_dir, tmp_path)


def test_tfds_build_with_malformed_config_json_is_one_line(tmp_path):
    result = tfds_build("--config", '{"name": "x", ', "--data_dir", tmp_path)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: --config is not valid JSON (Expecting property name")
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir())


def test_folder_without_labelmap_or_single_zip(tmp_path):
    folder = tmp_path / "download"
    folder.mkdir()
    for name in ("one.zip", "two.zip"):
        zipfile.ZipFile(folder / name, "w").close()

    with pytest.raises(InputError, match=r"labelmap\.txt not found.*one\.zip, two\.zip"):
        open_export(folder, tmp_path)


def test_corrupt_zip(tmp_path):
    zip_path = tmp_path / "export.zip"
    zip_path.write_bytes(b"not a zip")

    with pytest.raises(InputError, match=r"export\.zip is not a readable zip file"):
        open_export(zip_path, tmp_path)


def test_unknown_source_lists_valid_ones():
    expected = (
        r"\['auto', 'cityscapes', 'cvat', 'cvat_xml', 'folder', 'rgb_gt', 'satellite', 'utokyo'\]"
    )
    with pytest.raises(InputError, match=r"unknown source 'labelme'.*" + expected):
        FullSemanticConfig(name="mine", source="labelme")


def test_void_labels_must_be_a_list():
    with pytest.raises(InputError, match=r"void_labels must be a list"):
        FullSemanticConfig(name="mine", void_labels="background")


def test_missing_manual_dir(tmp_path):
    with pytest.raises(InputError, match=r"--manual_dir .*missing"):
        build(tmp_path / "missing", tmp_path / "data")


# === Failed builds ===


def test_failed_build_leaves_nothing_behind(tmp_path):
    export_dir = write_cvat_export(tmp_path / "export", corrupt_masks=["e"])
    data_dir = tmp_path / "data"

    with pytest.raises(InputError, match=r"SegmentationClass/e\.png"):
        build(export_dir, data_dir)

    assert not (data_dir / "full_semantic" / "cvat").exists()
    assert not (data_dir / "full_semantic").exists()


def test_failed_build_keeps_other_configs(tmp_path):
    data_dir = tmp_path / "data"
    build(write_cvat_export(tmp_path / "good"), data_dir)
    config = FullSemanticConfig(name="broken")

    with pytest.raises(InputError):
        build(write_cvat_export(tmp_path / "bad", corrupt_images=["a"]), data_dir, config)

    assert sorted(path.name for path in (data_dir / "full_semantic").iterdir()) == [
        ".config",
        "cvat",
    ]
    assert (data_dir / "full_semantic" / "cvat" / "1.0.0" / "dataset_info.json").exists()


def test_build_removes_what_killed_builds_left(tmp_path, monkeypatch):
    temp_root = tmp_path / "tmp"
    temp_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_root))
    data_dir = tmp_path / "data"
    config_dir = data_dir / "full_semantic" / "cvat"
    # A SIGKILLed build leaves TFDS's incomplete folder and its extracted zip.
    (config_dir / "incomplete.Q7XK2A_1.0.0" / "full_semantic-train.tfrecord-00000-of-00001").mkdir(
        parents=True
    )
    left = temp_root / "full_semantic_k1ll3d" / "extracted"
    left.mkdir(parents=True)
    (left / "labelmap.txt").write_text("background:0,0,0::\n")
    os.utime(left.parent, (time.time() - 3600,) * 2)

    build(write_cvat_export(tmp_path / "export"), data_dir)

    assert sorted(path.name for path in config_dir.iterdir()) == ["1.0.0"]
    assert list(temp_root.iterdir()) == []


def test_a_second_build_of_the_same_config_stops_with_one_line(tmp_path):
    data_dir = tmp_path / "data"
    config_dir = data_dir / "full_semantic" / "cvat"
    config_dir.mkdir(parents=True)
    with files.locked(config_dir, "held by a first build"):
        with pytest.raises(InputError, match=r"another build of full_semantic/cvat is running"):
            build(write_cvat_export(tmp_path / "export"), data_dir)
    assert list(config_dir.iterdir()) == []


def test_input_error_hook_prints_one_line_and_defers_the_rest(monkeypatch, capsys):
    previous = []
    monkeypatch.setattr(sys, "excepthook", lambda *args: previous.append(args))
    build_errors.install_input_error_hook(
        [config.name for config in Builder.builder_configs.values()]
    )
    hook = sys.excepthook
    try:
        raise InputError("SegmentationClass/a.png: bad\nthing")
    except InputError as input_error:
        try:
            raise RuntimeError("wrapped by tfds") from input_error
        except RuntimeError as wrapped:
            hook(type(wrapped), wrapped, wrapped.__traceback__)
    other = KeyError("x")
    hook(KeyError, other, None)

    assert capsys.readouterr().err == "error: SegmentationClass/a.png: bad thing\n"
    assert previous == [(KeyError, other, None)]


def test_input_error_hook_names_unknown_configs_and_blocked_data_dirs(
    tmp_path, monkeypatch, capsys
):
    previous = []
    monkeypatch.setattr(sys, "excepthook", lambda *args: previous.append(args))
    build_errors.install_input_error_hook(
        [config.name for config in Builder.builder_configs.values()]
    )
    hook = sys.excepthook
    (tmp_path / "afile").write_text("x")
    blocked = tmp_path / "afile" / "downloads"
    try:
        blocked.mkdir()
    except NotADirectoryError as error:
        hook(type(error), error, error.__traceback__)
    unknown = ValueError("BuilderConfig cvta not found with version 1.0.0. Here are 10 ...")
    hook(ValueError, unknown, None)

    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"error: {blocked}: {tmp_path / 'afile'} is a file, not a folder"
    assert lines[1].startswith("error: --config cvta: full_semantic has no such config; ")
    assert "auto, cvat, cityscapes" in lines[1] and "rgb_gt" in lines[1]
    assert len(lines) == 2 and previous == []


def test_tfds_build_command_prints_one_line_error(tmp_path):
    mask = np.zeros((8, 12, 3), dtype=np.uint8)
    mask[2, 2] = (7, 7, 7)
    export_dir = write_cvat_export(tmp_path / "export", masks={"c": mask})
    data_dir = tmp_path / "data"

    result = tfds_build(
        "--config", "cvat", "--manual_dir", export_dir, "--data_dir", data_dir, timeout=300
    )

    assert assert_one_line_error(result) == "error: " + (
        f"{export_dir}/SegmentationClass/c.png: 1 colour(s) not in labelmap.txt (1 pixels): "
        "(7, 7, 7) in 1 pixel(s)."
    )
    # The only one: `splitlines` also splits at the carriage returns of the progress bars.
    assert sum(line.startswith("error: ") for line in result.stderr.splitlines()) == 1
    assert not (data_dir / "full_semantic").exists()


def test_a_failed_tfds_build_leaves_no_empty_data_dir(tmp_path):
    kept = tmp_path / "kept"
    kept.mkdir()
    for data_dir, remains in ((tmp_path / "new" / "data", False), (kept, True)):
        result = tfds_build(
            "--config", "cvat", "--manual_dir", tmp_path / "missing", "--data_dir", data_dir
        )
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert "--manual_dir" in result.stderr.strip().splitlines()[-1]
        assert data_dir.exists() == remains  # an existing one is the user's: never removed
    assert not (tmp_path / "new").exists()
