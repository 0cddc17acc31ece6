"""Declarative TFDS test of the `full_semantic` builder over `dummy_data/`.

.venv/bin/pytest full_semantic/full_semantic_dataset_builder_test.py
"""

import tensorflow_datasets as tfds

from full_semantic import full_semantic_dataset_builder


class FullSemanticCvatTest(tfds.testing.DatasetBuilderTestCase):
    """`cvat` config on a 5-image CVAT export (train a b c, val d e; b.png in JPEGImages)."""

    DATASET_CLASS = full_semantic_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["cvat"]
    SPLITS = {"train": 3, "val": 2}
    SKIP_CHECKSUMS = True


if __name__ == "__main__":
    tfds.testing.test_main()
