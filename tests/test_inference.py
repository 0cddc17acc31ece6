"""Image inputs of predict.py (`semseg.inference.list_images`)."""

import pytest
from PIL import Image

from semseg.errors import InputError
from semseg.inference import list_images


def test_predict_refuses_inputs_whose_masks_would_overwrite_each_other(tmp_path):
    for name in ("a/frame.jpg", "a/frame.png", "b/frame.jpg", "b/other.jpg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.new("RGB", (4, 4)).save(tmp_path / name)
    with pytest.raises(InputError, match=r"3 images would all be written as masks/frame.png"):
        list_images([str(tmp_path / "a"), str(tmp_path / "b")])
    # The same file named twice is one image.
    paths = list_images([str(tmp_path / "b"), str(tmp_path / "b" / "other.jpg")])
    assert [path.name for path in paths] == ["frame.jpg", "other.jpg"]
