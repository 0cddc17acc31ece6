"""Images per second of the training input pipeline, against the training step rate.

Examples:

    python bench/input_pipeline.py
    python bench/input_pipeline.py --data_dir ~/tensorflow_datasets --batches 135
    python bench/input_pipeline.py --image_size 360 480 --batch_size 8 --train_precision bf16

Builds the real CamVid CVAT export (`../shared/data/camvid_cvat`) with
`full_semantic` and the config `{"name": "camvid", "source": "cvat",
"void_labels": ["background"]}` into a temporary data dir (or reads the build
in `--data_dir`), then pulls batches of `semseg.data.data.train_dataset` (decode,
cache, shuffle, random scale / crop / flip / photometric distortion, batch) at
360x480. The first pass over the split fills the cache and is reported apart;
`images_per_s` is the steady state over the following `--batches` batches. The
training step rate comes from `bench/train_step.py` (ddrnet23_slim, same size
and batch size, random data).

Prints one JSON line: {"dataset", "image_size", "batch_size", "images_per_s",
"first_pass_images_per_s", "batches", "train_images_per_s", "train_precision",
"ratio"}.
"""

import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from bench.options import TrainingSizeOptions  # noqa: E402
from semseg.base.cli import at_least, option, parse_config, run_command  # noqa: E402
from semseg.base.errors import InputError  # noqa: E402

CAMVID_DIR = PROJECT_ROOT.parent / "shared" / "data" / "camvid_cvat"
CAMVID_CONFIG = {"name": "camvid", "source": "cvat", "void_labels": ["background"]}
DATASET = "full_semantic/camvid"


@dataclasses.dataclass
class InputPipelineConfig(TrainingSizeOptions):
    camvid_dir: str = option(str(CAMVID_DIR), "the CamVid CVAT export to build")
    data_dir: str | None = option(
        help="a TFDS data dir that already holds full_semantic/camvid (no build)"
    )
    batch_size: int = option(8, check=at_least(1))
    batches: int = option(90, "timed batches after the first pass", check=at_least(1))
    train_precision: str = option(
        "fp32", "precision of the training steps to compare with", choices=("fp32", "bf16")
    )
    train_steps: int = option(10, "timed training steps", check=at_least(1))


def parse_args(argv=None):
    return parse_config(InputPipelineConfig, __doc__, argv)


def build_camvid(camvid_dir, data_dir):
    """Builds the CamVid CVAT export into `data_dir`; returns the `full_semantic/camvid` builder."""

    from full_semantic import cvat
    from full_semantic.config import FullSemanticConfig
    from full_semantic.prepare import build_dataset

    camvid_dir = Path(camvid_dir)
    if not (camvid_dir / cvat.LABELMAP_FILE).is_file():
        raise InputError(f"{camvid_dir}: not the CamVid CVAT export (no {cvat.LABELMAP_FILE})")
    build_dataset(FullSemanticConfig(**CAMVID_CONFIG), camvid_dir, data_dir)


def measure_pipeline(builder, image_size, batch_size, batches, split="train"):
    """Pulls batches of `semseg.data.data.train_dataset` (full augmentation) and times them.

    Args:
        builder: a `full_semantic` dataset builder.
        image_size: `(height, width)` of the crops.
        batch_size: images per batch.
        batches: batches timed after the first pass over the split.
        split: the split to read.

    Returns:
        dict: `images_per_s` (steady state), `first_pass_images_per_s` (decoding
        and filling the cache included), `batches`.
    """
    from semseg.data import data

    dataset, steps_per_epoch = data.train_dataset(builder, split, image_size, batch_size)
    iterator = iter(dataset)
    start = time.perf_counter()
    for _ in range(steps_per_epoch):
        next(iterator)
    first_pass = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    steady = time.perf_counter() - start
    return {
        "images_per_s": round(batches * batch_size / steady, 2),
        "first_pass_images_per_s": round(steps_per_epoch * batch_size / first_pass, 2),
        "batches": batches,
    }


def main(args):
    from bench.train_step import measure_train_step
    from semseg.data import data

    image_size = tuple(args.image_size)
    with tempfile.TemporaryDirectory(prefix="input_pipeline_") as scratch:
        data_dir = args.data_dir
        if data_dir is None:
            data_dir = scratch
            build_camvid(args.camvid_dir, data_dir)
        builder, labels = data.load_builder(DATASET, data_dir)
        result = {"dataset": DATASET, "image_size": list(image_size), "batch_size": args.batch_size}
        result.update(measure_pipeline(builder, image_size, args.batch_size, args.batches))
    train = measure_train_step(
        "ddrnet23_slim",
        image_size,
        args.batch_size,
        num_classes=len(labels.class_names),
        precision=args.train_precision,
        steps=args.train_steps,
    )
    result.update(
        train_images_per_s=train["images_per_s"],
        train_precision=args.train_precision,
        ratio=round(result["images_per_s"] / train["images_per_s"], 2),
    )
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    run_command(main, parse_args, log_level=None)
