"""Image inputs of predict.py (`semseg.predict.inference.list_images`, `read_image`)."""

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from semseg.base.errors import InputError
from semseg.predict.inference import list_images, read_image


def test_predict_refuses_inputs_whose_masks_would_overwrite_each_other(tmp_path):
    for name in ("a/frame.jpg", "a/frame.png", "b/frame.jpg", "b/other.jpg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.new("RGB", (4, 4)).save(tmp_path / name)
    with pytest.raises(InputError, match=r"3 images would all be written as masks/frame.png"):
        list_images([str(tmp_path / "a"), str(tmp_path / "b")])
    # The same file named twice is one image.
    paths = list_images([str(tmp_path / "b"), str(tmp_path / "b" / "other.jpg")])
    assert [path.name for path in paths] == ["frame.jpg", "other.jpg"]


def save_with_orientation(path, pixels, orientation):
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(path, exif=exif, quality=95)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_read_image_shows_exif_oriented_photos_upright(tmp_path, orientation):
    pixels = np.random.default_rng(orientation).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    png, jpeg = tmp_path / "photo.png", tmp_path / "photo.jpg"
    save_with_orientation(png, pixels, orientation)
    save_with_orientation(jpeg, pixels, orientation)

    upright = np.asarray(ImageOps.exif_transpose(Image.open(png)).convert("RGB"))
    np.testing.assert_array_equal(read_image(png), upright)
    # OpenCV's own EXIF handling (IMREAD_COLOR) decodes the JPEG the same way.
    viewer = cv2.cvtColor(cv2.imread(str(jpeg), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(read_image(jpeg), viewer)
    assert read_image(jpeg).shape == ((10, 6, 3) if orientation >= 5 else (6, 10, 3))
