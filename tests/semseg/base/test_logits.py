import numpy as np
import pytest
import tensorflow as tf

from semseg.base import logits as logits_contract
from semseg.base.logits import upsampled_class_ids


def smooth_logits(shape, seed=0):
    """float32 `(B, h, w, C)` logits that vary slowly (few class borders), as a trained
    model's do."""
    batch, height, width, classes = shape
    coarse = np.random.default_rng(seed).normal(size=(batch, 2, 3, classes)) * 3.0
    return tf.image.resize(coarse.astype(np.float32), (height, width)).numpy()


def reference_ids(logits, size):
    """The definition: bilinear resize (half-pixel centres), then argmax or `>= 0`."""
    resized = tf.image.resize(logits, size, method="bilinear").numpy()
    if logits.shape[-1] == 1:
        return (resized[..., 0] >= 0).astype(np.uint8), np.abs(resized[..., 0])
    top_two = np.sort(resized, axis=-1)[..., -2:]
    return resized.argmax(-1).astype(np.uint8), top_two[..., 1] - top_two[..., 0]


def assert_same_ids(got, logits, size):
    expected, margin = reference_ids(logits, size)
    assert got.shape == expected.shape and got.dtype == np.uint8
    # Float rounding may only break near-ties.
    assert not np.any((got != expected) & (margin > 1e-4))


def cell_ids(image, size):
    """`_cell_class_ids` of one `(h, w, C)` image resized to `size`, None for the fallback."""
    rows = logits_contract._AxisCells(image.shape[0], size[0])
    columns = logits_contract._AxisCells(image.shape[1], size[1])
    return logits_contract._cell_class_ids(image, rows, columns)


@pytest.mark.parametrize(
    ("shape", "size"),
    [
        ((2, 12, 16, 5), (24, 16)),  # 2 x 1
        ((1, 15, 14, 4), (45, 70)),  # odd factors 3 x 5
        ((1, 60, 80, 19), (480, 640)),  # DDRNet at 480x640: 8 x 8
        ((2, 12, 16, 1), (96, 128)),  # one logit (binary run)
        ((1, 45, 60, 11), (720, 1280)),  # a 360x480 model's head on an HD frame: 16 x 21.3
        ((1, 6, 8, 5), (13, 20)),  # fractional factors below 3
        ((1, 20, 20, 3), (20, 57)),  # one axis kept
        ((1, 30, 40, 7), (15, 20)),  # downscaling: cells no pixel samples
    ],
)
def test_cell_resizing_gives_the_ids_of_the_full_resize(shape, size):
    logits = smooth_logits(shape)
    for image in logits:  # the cells do the work, not the fallback
        ids = cell_ids(image, size)
        assert ids is not None
        if size[0] % shape[1] == 0 and size[1] % shape[2] == 0:  # and the faster layout
            scales = (size[0] // shape[1], size[1] // shape[2])
            np.testing.assert_array_equal(
                logits_contract._whole_cell_class_ids(image, *scales), ids
            )
    assert_same_ids(upsampled_class_ids(logits, size), logits, size)


@pytest.mark.parametrize("case", ["noise", "no-simple-ratio"])
def test_other_resizes_go_through_tensorflow_with_the_same_ids(case):
    if case == "noise":  # nearly every cell mixed: the cells would cost more
        logits = np.random.default_rng(3).normal(size=(1, 9, 9, 19)).astype(np.float32)
        size = (27, 18)
        assert cell_ids(logits[0], size) is None
    else:  # 80 -> 37 columns: cells of more kinds than CELL_KINDS_LIMIT
        logits, size = smooth_logits((1, 60, 80, 19)), (100, 37)
        kinds = [len(logits_contract._AxisCells(*axis).fractions) for axis in ((60, 100), (80, 37))]
        assert kinds[0] * kinds[1] > logits_contract.CELL_KINDS_LIMIT
    assert_same_ids(upsampled_class_ids(logits, size), logits, size)


def test_the_same_size_is_the_plain_argmax():
    logits = smooth_logits((2, 12, 16, 5))
    ids = upsampled_class_ids(logits, (12, 16))
    np.testing.assert_array_equal(ids, logits.argmax(-1).astype(np.uint8))


def test_cell_upsampling_takes_tensors_and_an_empty_batch():
    logits = smooth_logits((1, 4, 6, 3))
    assert_same_ids(upsampled_class_ids(tf.constant(logits), (8, 12)), logits, (8, 12))
    assert upsampled_class_ids(np.zeros((0, 4, 6, 3), np.float32), (8, 12)).shape == (0, 8, 12)
