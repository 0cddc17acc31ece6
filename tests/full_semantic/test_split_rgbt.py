"""Tests of `python -m full_semantic.split_rgbt` (and `utokyo.split_rgbt_folder`) on
generated 4-channel UTokyo images.

    .venv/bin/pytest tests/full_semantic/test_split_rgbt.py
"""

import cv2
import numpy as np
import pytest
from commands import python
from PIL import Image
from source_fixtures import save_png, utokyo_image, write_utokyo

from full_semantic import utokyo
from semseg.base.errors import InputError

SIZE = (20, 12)


def split_command(images, output):
    return python("-m", "full_semantic.split_rgbt", "--input", images, "--output", output)


def test_command_line_splits_every_image(tmp_path):
    release = write_utokyo(tmp_path / "ir_seg_dataset", image_size=SIZE)
    save_png(release / "images" / "night" / "00010N.png", utokyo_image("00010N", SIZE))

    result = split_command(release / "images", tmp_path / "split")

    assert result.returncode == 0, result.stderr
    assert f"split 5 images: {tmp_path / 'split'}/rgb" in result.stdout
    assert "split RGBT" in result.stderr  # the tqdm bar
    for key in ("00001D", "00002N", "00003D", "00004N", "night/00010N"):
        name = key.split("/")[-1]
        rgb = Image.open(tmp_path / "split" / "rgb" / f"{key}.png")
        thermal = Image.open(tmp_path / "split" / "thermal" / f"{key}.png")
        assert (rgb.mode, thermal.mode) == ("RGB", "L")
        np.testing.assert_array_equal(np.asarray(rgb), utokyo_image(name, SIZE)[..., :3])
        np.testing.assert_array_equal(np.asarray(thermal), utokyo_image(name, SIZE)[..., 3])
    leftovers = [path for path in (tmp_path / "split").rglob("*") if ".tmp" in path.name]
    assert leftovers == []


def test_wrong_image_stops_before_anything_is_written(tmp_path):
    release = write_utokyo(tmp_path / "ir_seg_dataset", image_size=SIZE)
    save_png(release / "images" / "00003D.png", np.zeros((12, 20, 3), np.uint8))

    result = split_command(release / "images", tmp_path / "split")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {release / 'images' / '00003D.png'}: 8-bit, RGB; expected an 8-bit 4-channel "
        "PNG (RGB + thermal, read as RGBA)."
    ]
    assert not (tmp_path / "split").exists()


def test_16_bit_rgba_is_refused(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    assert cv2.imwrite(str(folder / "00001D.png"), np.zeros((12, 20, 4), np.uint16))

    with pytest.raises(InputError, match=r"00001D\.png: 16-bit, RGBA; expected an 8-bit"):
        utokyo.split_rgbt_folder(folder, tmp_path / "split", show_progress=False)


def test_output_inside_input_and_empty_input_are_refused(tmp_path):
    release = write_utokyo(tmp_path / "ir_seg_dataset", image_size=SIZE)
    with pytest.raises(InputError, match=r"--output .* is inside --input"):
        utokyo.split_rgbt_folder(release, release / "split", show_progress=False)

    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"--input .*empty: no \.png image"):
        utokyo.split_rgbt_folder(tmp_path / "empty", tmp_path / "split", show_progress=False)
    with pytest.raises(InputError, match=r"--input .*missing: no such folder"):
        utokyo.split_rgbt_folder(tmp_path / "missing", tmp_path / "split", show_progress=False)
