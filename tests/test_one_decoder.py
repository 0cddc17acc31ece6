"""One image decoder for the whole toolkit: the same odd files give the same pixels, or the
same error naming the file, in the builder, augmentation, prediction, evaluation and
image selection."""

import io

import numpy as np
import pytest
from PIL import Image

from data_augmentation.source_files import read_rgb
from full_semantic import raster
from semseg.base.errors import InputError
from semseg.evaluate import evaluation
from semseg.labelling import selection
from semseg.predict import inference

# EXIF orientation -> how the stored pixels are shown upright.
UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def picture():
    """A small picture with no symmetry, so every EXIF orientation shows."""
    rows, columns = np.mgrid[:24, :36]
    return np.stack([rows * 10, columns * 7, (rows * columns) % 251], axis=-1).astype(np.uint8)


def odd_files(folder):
    """`{name: path}`: EXIF orientations 1-8, 16-bit, paletted, CMYK, grey, RGBA and
    truncated JPEG and PNG files."""
    base = Image.fromarray(picture())
    files = {}
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = folder / f"exif_{orientation}.jpg"
        base.save(path, exif=exif, quality=95)
        files[path.name] = path
    variants = {
        "grey.png": base.convert("L"),
        "paletted.png": base.convert("P"),
        "cmyk.jpg": base.convert("CMYK"),
        "sixteen_bit.png": Image.fromarray(picture()[..., 0].astype(np.uint16) * 257),
    }
    rgba = base.convert("RGBA")
    rgba.putalpha(Image.fromarray(np.full((24, 36), 128, np.uint8)))
    variants["rgba.png"] = rgba
    for name, image in variants.items():
        image.save(folder / name)
        files[name] = folder / name
    for name in ("truncated.jpg", "truncated.png"):
        source = folder / ("exif_1.jpg" if name.endswith("jpg") else "grey.png")
        (folder / name).write_bytes(source.read_bytes()[: source.stat().st_size // 2])
        files[name] = folder / name
    return files


def builder_pixels(path):
    """What the CVAT sources put in a dataset (`full_semantic/cvat.py`, `cvat_xml.py`)."""
    value, _ = raster.image_feature(path.read_bytes(), 3, str(path), drop_alpha=True)
    if isinstance(value, bytes):  # kept as encoded: what TFDS decodes again
        return np.asarray(Image.open(io.BytesIO(value)).convert("RGB"))
    return value


# predict.py, eval.py (--images) and select_images.py all read files through
# `semseg.predict.inference.read_image` (`test_the_commands_have_no_decoder_of_their_own`).
PATHS = {
    "build": builder_pixels,
    "augment": read_rgb,
    "predict, evaluate, select": lambda path: inference.read_image(path, 3),
}


def outcome(read, path):
    try:
        return read(path)
    except InputError as error:
        return error


def test_every_command_decodes_odd_files_identically(tmp_path):
    files = odd_files(tmp_path)
    upright = None
    for name, path in files.items():
        reference = outcome(lambda item: raster.read_image(item, 3), path)
        for command, read in PATHS.items():
            result = outcome(read, path)
            if isinstance(reference, InputError):
                assert isinstance(result, InputError), (name, command)
                assert str(result).startswith(str(path)), (name, command, str(result))
            else:
                np.testing.assert_array_equal(result, reference, err_msg=f"{name} {command}")
        if name == "exif_1.jpg":
            upright = reference
    # Orientations 2-8 store the same pixels as 1 and are shown turned as EXIF says.
    for orientation, turn in UPRIGHT.items():
        pixels = raster.read_image(files[f"exif_{orientation}.jpg"], 3)
        np.testing.assert_array_equal(pixels, turn(upright))
    errors = {
        name: str(outcome(lambda item: raster.read_image(item, 3), path))
        for name, path in files.items()
        if isinstance(outcome(lambda item: raster.read_image(item, 3), path), InputError)
    }
    assert sorted(errors) == ["sixteen_bit.png", "truncated.jpg", "truncated.png"]
    assert "truncated" in errors["truncated.jpg"] and "16" in errors["sixteen_bit.png"]


def test_the_commands_have_no_decoder_of_their_own():
    assert inference.read_image.__code__.co_names == ("raster", "read_image")
    for module in (inference, evaluation, selection):
        source = open(module.__file__).read()
        assert "cv2.imread" not in source and "Image.open" not in source, module.__name__
    for module in (evaluation, selection):
        assert "from semseg.predict.inference import read_image" in open(module.__file__).read()
    reader = open(read_rgb.__code__.co_filename).read().split("def read_rgb")[1]
    assert "Image.open" not in reader.split("def read_size")[0]


@pytest.mark.parametrize("channels", [1, 4])
def test_other_channel_counts_refuse_rgb_files_naming_them(tmp_path, channels):
    path = tmp_path / "photo.png"
    Image.fromarray(picture()).save(path)
    with pytest.raises(InputError, match=f"^{path}: "):
        raster.read_image(path, channels)


def test_a_folder_of_images_means_one_thing_to_every_command(tmp_path):
    from data_augmentation.source_files import list_images as backgrounds
    from semseg.predict.inference import list_images as prediction_inputs

    folder = tmp_path / "photos"
    (folder / "thumbs").mkdir(parents=True)
    for name in ("b.jpg", "a.PNG", "thumbs/c.jpg"):
        Image.fromarray(picture()).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden").mkdir()
    Image.fromarray(picture()).save(folder / ".hidden" / "d.jpg")
    expected = [folder / "a.PNG", folder / "b.jpg", folder / "thumbs" / "c.jpg"]
    assert prediction_inputs([folder]) == expected
    assert backgrounds(folder, "--bg_path") == expected
    for lister, flag in (
        (lambda path: prediction_inputs([path]), "--input"),
        (lambda path: backgrounds(path, "--bg_path"), "--bg_path"),
    ):
        with pytest.raises(InputError, match=f"^{flag} {tmp_path / 'missing'}: no such file"):
            lister(tmp_path / "missing")
        with pytest.raises(InputError, match=f"^{flag} {folder / 'thumbs' / 'none'}"):
            (folder / "thumbs" / "none").mkdir()
            lister(folder / "thumbs" / "none")
        (folder / "thumbs" / "none").rmdir()
