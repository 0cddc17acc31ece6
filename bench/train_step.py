r"""Images per second of full training steps (forward, loss, backward, SGD update).

Examples:

    python bench/train_step.py --model ddrnet23_slim --image_size 360 480 --batch_size 8
    python bench/train_step.py --model ddrnet23_slim --image_size 360 480 --batch_size 8 \
        --precision bf16 --jit
    # MirroredStrategy over the CPU split into 2 logical devices (4 images each)
    python bench/train_step.py --model ddrnet23_slim --image_size 360 480 --batch_size 8 \
        --cpu_devices 2

Prints one JSON line: {"model", "image_size", "batch_size", "precision", "jit",
"replicas", "images_per_s", "step_ms_median", "steps"}; `batch_size` is the
global batch, split over the replicas. Random data, so the input pipeline
does not count (see bench/input_pipeline.py for that).
"""

import dataclasses
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.options import TrainingSizeOptions  # noqa: E402
from semseg.base.cli import at_least, option, parse_config, run_command  # noqa: E402
from semseg.base.errors import InputError  # noqa: E402

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclasses.dataclass
class TrainStepConfig(TrainingSizeOptions):
    model: str = option("ddrnet23_slim", "a name of models.MODELS")
    batch_size: int = option(8, check=at_least(1))
    num_classes: int = option(11, "CamVid's classes", check=at_least(1))
    precision: str = option("fp32", choices=PRECISIONS)
    jit: bool = option(False, "XLA-compile the training step")
    steps: int = option(15, "timed steps", check=at_least(1))
    warmup: int = option(3, check=at_least(0))
    cpu_devices: int = option(
        1,
        "split the CPU into N logical devices and train under MirroredStrategy with "
        "synchronised batch norm (the --multi_gpu path of train.py); 1: one device",
        metavar="N",
    )

    def check_together(self):
        super().check_together()
        if self.cpu_devices < 1 or self.batch_size % self.cpu_devices:
            raise InputError(
                "--cpu_devices must be at least 1 and divide --batch_size. "
                f"Received: cpu_devices={self.cpu_devices}, batch_size={self.batch_size}"
            )


def parse_args(argv=None):
    return parse_config(TrainStepConfig, __doc__, argv)


def measure_train_step(
    model_name="ddrnet23_slim",
    image_size=(360, 480),
    batch_size=8,
    num_classes=11,
    precision="fp32",
    jit=False,
    steps=15,
    warmup=3,
    replicas=1,
):
    """Times full training steps (`train_on_batch`: forward, loss, backward, SGD update).

    The model is built with a static `input_shape=(H, W, 3)` under the Keras
    dtype policy of `precision` (restored afterwards), compiled with
    SGD(0.01, momentum 0.9) and cross-entropy, and trained on one random batch.

    Args:
        model_name: a name of `models.MODELS`.
        image_size: `(height, width)` of the batch.
        batch_size: images per step.
        num_classes: classes of the model and the random masks.
        precision: `"fp32"`, `"bf16"` or `"fp16"` (see `semseg.runtime.precision`).
        jit: XLA-compile the training step (`compile(jit_compile=True)`).
        steps: timed steps.
        warmup: untimed steps first (tracing, compilation).
        replicas: 1, or the number of logical CPU devices to mirror the model
            over (`MirroredStrategy`, synchronised batch norm; must come before
            any other TensorFlow work in the process); `batch_size` is global.

    Returns:
        dict: `model`, `image_size`, `batch_size`, `precision`, `jit`,
        `replicas`, `images_per_s` (at the median step), `step_ms_median`, `steps`.
    """
    import keras
    import numpy as np

    import models
    from semseg.losses.losses import build_loss
    from semseg.runtime.latency import summarize, time_function
    from semseg.runtime.precision import precision_policy
    from semseg.train.distribute import synchronize_batch_norm

    if model_name not in models.MODELS:
        raise InputError(
            f"--model must be one of {', '.join(models.MODELS)}. Received: {model_name}"
        )
    height, width = image_size
    strategy = _strategy(replicas)
    keras.utils.set_random_seed(0)
    with precision_policy(precision), strategy.scope():
        model = models.build_model(model_name, num_classes, input_shape=(height, width, 3))
        if replicas > 1:
            synchronize_batch_norm(model)
        model.compile(
            optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
            loss=build_loss("ce"),
            jit_compile=jit,
        )
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch_size, height, width, 3)).astype("float32")
    masks = rng.integers(0, num_classes, (batch_size, height, width)).astype("int32")

    def step():
        model.train_on_batch(images, masks)

    stats = summarize(time_function(step, steps, warmup), batch_size)
    return {
        "model": model_name,
        "image_size": [height, width],
        "batch_size": batch_size,
        "precision": precision,
        "jit": jit,
        "replicas": replicas,
        "images_per_s": round(stats["fps"], 2),
        "step_ms_median": round(stats["p50"], 1),
        "steps": stats["runs"],
    }


def _strategy(replicas):
    """The default strategy, or `MirroredStrategy` over `replicas` logical CPU devices."""
    import tensorflow as tf

    from semseg.train.distribute import configure_cpu_devices

    if replicas == 1:
        return tf.distribute.get_strategy()
    configure_cpu_devices(replicas)
    return tf.distribute.MirroredStrategy(
        [device.name for device in tf.config.list_logical_devices("CPU")]
    )


def main(args):
    result = measure_train_step(
        args.model,
        tuple(args.image_size),
        args.batch_size,
        args.num_classes,
        args.precision,
        args.jit,
        args.steps,
        args.warmup,
        args.cpu_devices,
    )
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    run_command(main, parse_args, log_level=None)
