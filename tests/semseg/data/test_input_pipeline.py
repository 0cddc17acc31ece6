"""The tf.data pipeline over a dataset really built by the full_semantic builder."""

import numpy as np
import pytest
import tensorflow as tf
from cvat_fixtures import build_demo_dataset

from full_semantic.config import FullSemanticConfig
from semseg.base.errors import InputError
from semseg.base.labels import IGNORE_INDEX
from semseg.data import data


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("pipeline")
    config = FullSemanticConfig(name="shapes", source="cvat", void_labels=("background",))
    build_demo_dataset(base, config, num_train=6, num_val=3, size=(48, 64), seed=3)
    return base / "tfds"


def test_load_builder_reads_classes_from_the_dataset(data_dir):
    builder, labels = data.load_builder("full_semantic/shapes", data_dir)
    assert labels.class_names == ["disc", "box", "triangle"]
    assert labels.palette == [[230, 25, 75], [60, 180, 75], [0, 130, 200]]
    assert data.num_channels(builder) == 3
    assert data.num_examples(builder, "train") == 6


def test_train_batches_have_the_contract_shapes_dtypes_and_labels(data_dir):
    builder, labels = data.load_builder("full_semantic/shapes", data_dir)
    batches, steps = data.train_dataset(builder, "train", (32, 40), batch_size=4, seed=1)
    assert steps == 1
    for images, masks in batches.take(5):
        assert images.shape == (4, 32, 40, 3) and images.dtype == tf.float32
        assert masks.shape == (4, 32, 40) and masks.dtype == tf.int32
        values = set(np.unique(masks.numpy()))
        assert values <= set(range(labels.num_classes)) | {IGNORE_INDEX}
        assert IGNORE_INDEX in values  # the void background
        assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 255.0


def test_training_batches_repeat_with_the_seed(data_dir):
    builder, _ = data.load_builder("full_semantic/shapes", data_dir)

    def first_batches(seed):
        batches, _ = data.train_dataset(builder, "train", (32, 40), batch_size=2, seed=seed)
        return [masks.numpy() for _, masks in batches.take(3)]

    first, again, other = first_batches(5), first_batches(5), first_batches(6)
    for one, two in zip(first, again):
        np.testing.assert_array_equal(one, two)
    assert any(not np.array_equal(one, two) for one, two in zip(first, other))


def test_eval_batches_are_resized_with_nearest_neighbour(data_dir):
    builder, labels = data.load_builder("full_semantic/shapes", data_dir)
    batches = list(data.eval_dataset(builder, "val", (30, 50), batch_size=2))
    assert [images.shape[0] for images, _ in batches] == [2, 1]
    for images, masks in batches:
        assert images.shape[1:] == (30, 50, 3) and masks.shape[1:] == (30, 50)
        assert set(np.unique(masks.numpy())) <= set(range(labels.num_classes)) | {IGNORE_INDEX}
    limited = list(data.eval_dataset(builder, "val", (30, 50), batch_size=2, max_examples=1))
    assert len(limited) == 1 and limited[0][0].shape[0] == 1


def test_missing_dataset_or_split_is_a_clear_error(data_dir):
    with pytest.raises(InputError, match="no built dataset 'full_semantic/nothing'.*tfds build"):
        data.load_builder("full_semantic/nothing", data_dir)
    builder, _ = data.load_builder("full_semantic/shapes", data_dir)
    with pytest.raises(InputError, match="no split 'test'; the dataset has train, val"):
        data.train_dataset(builder, "test", (32, 32), batch_size=2)
    with pytest.raises(InputError, match="no split 'train\\+test'"):
        data.train_dataset(builder, "train+test", (32, 32), batch_size=2)


def test_train_and_val_together_are_one_training_split(data_dir):
    """The standard protocol of a fixed schedule on train+val: TFDS split arithmetic."""
    builder, _ = data.load_builder("full_semantic/shapes", data_dir)
    assert data.num_examples(builder, "train+val") == 9
    batches, steps = data.train_dataset(builder, "train+val", (32, 32), 3, augment=False)
    assert steps == 3
    # One pass (3 batches) holds all 9 images once, so both splits.
    seen = {bytes(image.numpy()) for images, _ in batches.take(3) for image in images}
    assert len(seen) == 9


def test_newest_version_is_picked_unless_one_is_asked_for(data_dir):
    assert data.dataset_path("full_semantic/shapes", data_dir).name == "1.0.0"
    assert data.dataset_path("full_semantic/shapes:1.0.0", data_dir).name == "1.0.0"
    with pytest.raises(InputError):
        data.dataset_path("full_semantic/shapes:9.9.9", data_dir)
