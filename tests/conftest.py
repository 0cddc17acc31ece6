"""Shared fixtures: a small demo dataset and a briefly trained run on it."""

import pytest
from cvat_fixtures import build_demo_dataset


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """A DDRNet-23-slim run trained for a minute on demo scenes at 72x88.

    72x88 makes the 1/64 -> 1/8 upsampling inside DDRNet non-integer (2 -> 9, 2 -> 11),
    which is where exporters go wrong. Returns the work dir (`Path`).
    """
    from semseg.run_config import RunConfig
    from semseg.training import train

    base = tmp_path_factory.mktemp("demo_run")
    build_demo_dataset(base, num_train=96, num_val=16, size=(72, 88), seed=4)
    config = RunConfig(
        work_dir=str(base / "run"),
        dataset="full_semantic/cvat",
        data_dir=str(base / "tfds"),
        image_size=(72, 88),
        batch_size=8,
        epochs=6,
        optimizer="adamw",
        learning_rate=0.003,
        weight_decay=1e-4,
    )
    train(config)
    return base / "run"
