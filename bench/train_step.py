"""Images per second of full training steps (forward, loss, backward, SGD update).

Examples:

    python bench/train_step.py --model ddrnet23_slim --image_size 360 480 --batch_size 8
    python bench/train_step.py --model ddrnet23_slim --image_size 360 480 --batch_size 8 \
        --precision bf16 --jit

Prints one JSON line: {"model", "image_size", "batch_size", "precision", "jit",
"images_per_s", "step_ms_median", "steps"}. Random data, so the input pipeline
does not count (see bench/input_pipeline.py for that).
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import models  # noqa: E402
from semseg.latency import summarize, time_function  # noqa: E402
from semseg.losses import build_loss  # noqa: E402

POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="ddrnet23_slim")
    parser.add_argument("--image_size", type=int, nargs=2, default=(360, 480))
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--num_classes", type=int, default=11)
    parser.add_argument("--precision", choices=sorted(POLICIES), default="fp32")
    parser.add_argument("--jit", action="store_true", help="XLA-compile the training step")
    parser.add_argument("--steps", type=int, default=15, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3)
    return parser.parse_args(argv)


def main(args):
    keras.mixed_precision.set_global_policy(POLICIES[args.precision])
    keras.utils.set_random_seed(0)
    height, width = args.image_size
    model = models.build_model(args.model, args.num_classes, input_shape=(height, width, 3))
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=build_loss("ce"),
        jit_compile=args.jit,
    )
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (args.batch_size, height, width, 3)).astype("float32")
    masks = rng.integers(0, args.num_classes, (args.batch_size, height, width)).astype("int32")

    def step():
        model.train_on_batch(images, masks)

    stats = summarize(time_function(step, args.steps, args.warmup), args.batch_size)
    print(json.dumps({
        "model": args.model,
        "image_size": [height, width],
        "batch_size": args.batch_size,
        "precision": args.precision,
        "jit": args.jit,
        "images_per_s": round(stats["fps"], 2),
        "step_ms_median": round(stats["p50"], 1),
        "steps": stats["runs"],
    }))


if __name__ == "__main__":
    main(parse_args())
