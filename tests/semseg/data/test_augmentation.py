"""The online augmentation: shapes, dtypes, label set, geometry and determinism."""

import numpy as np
import pytest
import tensorflow as tf

from semseg.base.labels import IGNORE_INDEX
from semseg.data.data import augment_pair, resize_pair


def coded_pair(height=48, width=64):
    """An image whose first channel encodes the mask (class id * 60), so any geometric
    misalignment between image and mask shows up."""
    rng = np.random.default_rng(0)
    mask = np.zeros((height, width), dtype=np.int32)
    for class_id in (1, 2, 3):
        top, left = rng.integers(0, [height - 12, width - 12])
        mask[top : top + 12, left : left + 12] = class_id
    mask[:3, :3] = IGNORE_INDEX
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[..., 0] = np.where(mask == IGNORE_INDEX, 250, mask * 60)
    image[..., 1] = 128
    return tf.constant(image), tf.constant(mask)


@pytest.mark.parametrize("seed", [(1, 2), (3, 4), (5, 6), (7, 8)])
def test_augmented_pair_has_target_shape_dtypes_and_label_set(seed):
    image, mask = coded_pair()
    out_image, out_mask = augment_pair(image, mask, tf.constant(seed, tf.int64), (40, 56))
    assert out_image.shape == (40, 56, 3) and out_image.dtype == tf.float32
    assert out_mask.shape == (40, 56) and out_mask.dtype == tf.int32
    assert set(np.unique(out_mask.numpy())) <= {0, 1, 2, 3, IGNORE_INDEX}
    assert 0.0 <= float(tf.reduce_min(out_image)) and float(tf.reduce_max(out_image)) <= 255.0


@pytest.mark.parametrize("seed", [(1, 2), (3, 4), (9, 9), (11, 0)])
def test_image_and_mask_get_the_same_geometry(seed):
    image, mask = coded_pair()
    out_image, out_mask = augment_pair(
        image,
        mask,
        tf.constant(seed, tf.int64),
        (40, 56),
        scale_range=(1.0, 2.0),
        photometric=False,
    )
    out_image, out_mask = out_image.numpy(), out_mask.numpy()
    # Away from class borders (bilinear blending), the image still encodes the mask.
    eroded = np.ones_like(out_mask, dtype=bool)
    for shift_y in (-1, 0, 1):
        for shift_x in (-1, 0, 1):
            eroded &= np.roll(out_mask, (shift_y, shift_x), axis=(0, 1)) == out_mask
    eroded[[0, -1], :] = eroded[:, [0, -1]] = False
    labelled = eroded & (out_mask != IGNORE_INDEX) & (out_image[..., 1] > 64)
    assert labelled.sum() > 100
    decoded = np.round(out_image[..., 0][labelled] / 60).astype(int)
    np.testing.assert_array_equal(decoded, out_mask[labelled])


def test_same_seed_same_augmentation_other_seed_differs():
    image, mask = coded_pair()
    first = augment_pair(image, mask, tf.constant([5, 5], tf.int64), (40, 56))
    again = augment_pair(image, mask, tf.constant([5, 5], tf.int64), (40, 56))
    other = augment_pair(image, mask, tf.constant([6, 5], tf.int64), (40, 56))
    np.testing.assert_array_equal(first[0].numpy(), again[0].numpy())
    np.testing.assert_array_equal(first[1].numpy(), again[1].numpy())
    assert not np.array_equal(first[0].numpy(), other[0].numpy())


def test_small_scales_pad_the_mask_with_ignore():
    image, mask = coded_pair()
    _, out_mask = augment_pair(
        image, mask, tf.constant([1, 1], tf.int64), (40, 56), scale_range=(0.5, 0.5)
    )
    # At half the covering scale the image fills at most half of each side.
    assert np.mean(out_mask.numpy() == IGNORE_INDEX) > 0.5


def test_one_and_four_channel_images_are_augmented():
    _, mask = coded_pair()
    for channels in (1, 4):
        image = tf.fill([48, 64, channels], tf.constant(100, tf.uint8))
        out_image, _ = augment_pair(image, mask, tf.constant([2, 3], tf.int64), (32, 32))
        assert out_image.shape == (32, 32, channels)


def test_resize_pair_keeps_mask_ids_exact():
    image, mask = coded_pair()
    _, resized = resize_pair(image, mask, (37, 91))
    assert resized.dtype == tf.int32
    assert set(np.unique(resized.numpy())) <= set(np.unique(mask.numpy()))


@pytest.mark.parametrize("seed", [[1, 2], [7, 3]])
def test_a_crop_smaller_than_the_image_size_keeps_the_scale_relative_to_it(seed):
    """Stripes 32 pixels wide in a 128-pixel image are 16 wide at --image_size 64 with
    scale 1, whatever the crop; a scale relative to the crop would make them 8 wide."""
    columns = np.arange(128) // 32
    mask = tf.constant(np.tile(columns, (128, 1)), tf.int32)
    image = tf.cast(tf.stack([mask * 60] * 3, axis=-1), tf.uint8)
    out_image, out_mask = augment_pair(
        image, mask, tf.constant(seed, tf.int64), (64, 64), (1.0, 1.0), False, crop_size=(32, 40)
    )
    assert out_image.shape == (32, 40, 3) and out_mask.shape == (32, 40)
    row = out_mask.numpy()[0]
    changes = np.flatnonzero(np.diff(row)) + 1
    runs = np.diff(np.concatenate([[0], changes, [len(row)]]))
    assert (runs[1:-1] == 16).all() and len(runs) >= 3
    assert (out_mask.numpy() == row).all()  # the same stripes in every row
