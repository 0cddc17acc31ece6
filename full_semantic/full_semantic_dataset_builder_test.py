"""Declarative TFDS tests of the `full_semantic` builder: one per source, over `dummy_data/SOURCE/`.

.venv/bin/pytest full_semantic/full_semantic_dataset_builder_test.py

`dummy_data/` was written by `tests/source_fixtures.py::write_dummy_data`.
"""

import pathlib

import tensorflow_datasets as tfds

from full_semantic import full_semantic_dataset_builder

DUMMY_DATA = pathlib.Path(__file__).resolve().parent / "dummy_data"


class FullSemanticCvatTest(tfds.testing.DatasetBuilderTestCase):
    """`cvat` config on a 5-image CVAT export (train a b c, val d e; b.png in JPEGImages)."""

    DATASET_CLASS = full_semantic_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["cvat"]
    EXAMPLE_DIR = DUMMY_DATA / "cvat"
    SPLITS = {"train": 3, "val": 2}
    SKIP_CHECKSUMS = True


class FullSemanticCityscapesTest(tfds.testing.DatasetBuilderTestCase):
    """Both Cityscapes configs: train aachen (labelIds) + bochum (polygons only), val
    frankfurt; the unannotated test split is left out."""

    DATASET_CLASS = full_semantic_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["cityscapes", "cityscapes_categories"]
    EXAMPLE_DIR = DUMMY_DATA / "cityscapes"
    SPLITS = {"train": 2, "val": 1}
    SKIP_CHECKSUMS = True


class FullSemanticUTokyoTest(tfds.testing.DatasetBuilderTestCase):
    """The three UTokyo configs (3, 1 and 4 channels) on one 4-image release."""

    DATASET_CLASS = full_semantic_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["utokyo_rgb", "utokyo_thermal", "utokyo_rgbt"]
    EXAMPLE_DIR = DUMMY_DATA / "utokyo"
    SPLITS = {"train": 2, "val": 1, "test": 1}
    SKIP_CHECKSUMS = True


class FullSemanticSatelliteTest(tfds.testing.DatasetBuilderTestCase):
    """`satellite` on 3 tiles (negative and out-of-range coordinates, missing label files)."""

    DATASET_CLASS = full_semantic_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["satellite"]
    EXAMPLE_DIR = DUMMY_DATA / "satellite"
    SPLITS = {"train": 2, "val": 1}
    SKIP_CHECKSUMS = True


class FullSemanticFolderTest(tfds.testing.DatasetBuilderTestCase):
    """`folder` on 3 PNG images with index labels and split lists."""

    DATASET_CLASS = full_semantic_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["folder"]
    EXAMPLE_DIR = DUMMY_DATA / "folder"
    SPLITS = {"train": 2, "val": 1}
    SKIP_CHECKSUMS = True


if __name__ == "__main__":
    tfds.testing.test_main()
