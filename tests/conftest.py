"""Shared fixtures: a small demo dataset and a briefly trained run on it."""

import pytest
from cvat_fixtures import build_demo_dataset


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """A DDRNet-lite run trained for half a minute on demo scenes at 72x88.

    72x88 makes the 1/64 -> 1/8 upsampling inside DDRNet non-integer (2 -> 9, 2 -> 11),
    which is where exporters go wrong. DDRNet-lite is DDRNet-23-slim's code with fewer
    and narrower blocks, so the exports, videos and archives made from this run take
    less time than with DDRNet-23-slim itself. Returns the work dir (`Path`).
    """
    from semseg.config.run_config import RunConfig
    from semseg.train.training import train

    base = tmp_path_factory.mktemp("demo_run")
    build_demo_dataset(base, num_train=96, num_val=16, size=(72, 88), seed=4)
    config = RunConfig(
        work_dir=str(base / "run"),
        dataset="full_semantic/cvat",
        data_dir=str(base / "tfds"),
        model="ddrnet_lite",
        image_size=(72, 88),
        batch_size=8,
        epochs=6,
        optimizer="adamw",
        learning_rate=0.003,
        weight_decay=1e-4,
    )
    train(config)
    return base / "run"
