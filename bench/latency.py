r"""Batch-1 latency of a model on one runtime and precision (random weights).

Examples:

    python bench/latency.py --model ddrnet23_slim --image_size 480 640 --runtime onnx
    python bench/latency.py --model ddrnet23_slim --image_size 480 640 --runtime tflite \
        --precision int8 --threads 2
    python bench/latency.py --model ddrnet23_slim --image_size 480 640 --runtime keras \
        --precision bf16
    # What a user's frame costs: preprocessing, the runtime, upsampling and argmax, with
    # the export ending at the head (export.py --low_res_logits)
    python bench/latency.py --model ddrnet_lite --runtime openvino --precision bf16 \
        --end_to_end --low_res_logits

Prints one JSON line: {"model", "runtime", "precision", "image_size", "median_ms",
"p95_ms", "runs", "threads", "end_to_end", "low_res_logits"}. Exported runtimes
(saved_model, tflite, onnx, openvino) are exported from the Keras model with
`semseg.export.export.export_model` into a temporary folder first; int8 calibrates on
random images (speed does not depend on the calibration). Runtimes and precisions:

    keras        fp32, bf16   TensorFlow + oneDNN, batch norms folded, static shapes
    xla          fp32, bf16   the same graph compiled by XLA
    saved_model  fp32, bf16   SavedModel export, TensorFlow
    tflite       fp32, fp16, int8   LiteRT with XNNPACK
    onnx         fp32, int8   ONNX Runtime, CPU execution provider
    openvino     fp32, bf16, int8   OpenVINO, CPU plugin
"""

import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.options import (  # noqa: E402
    PRECISIONS,
    TENSORFLOW_RUNTIMES,
    InferenceSizeOptions,
    ModelOptions,
)
from semseg.base.cli import at_least, option, parse_config, run_command  # noqa: E402
from semseg.base.errors import InputError  # noqa: E402

CALIBRATION_IMAGES = 8


@dataclasses.dataclass
class LatencyConfig(InferenceSizeOptions, ModelOptions):
    runtime: str = option("keras", choices=tuple(PRECISIONS))
    precision: str = option("fp32", choices=("fp32", "fp16", "bf16", "int8"))
    threads: int | None = option(help="CPU threads (default: all cores)", check=at_least(1))
    runs: int = option(50, "timed calls", check=at_least(1))
    warmup: int = option(10, "untimed calls first", check=at_least(0))
    end_to_end: bool = option(
        False, "time Predictor.predict of a uint8 frame of --image_size instead of the runtime"
    )
    low_res_logits: bool = option(False, "export the model without its final upsampling")

    def check_together(self):
        super().check_together()
        if self.precision not in PRECISIONS[self.runtime]:
            raise InputError(
                f"--precision {self.precision} is not available for --runtime {self.runtime} "
                f"(offered: {', '.join(PRECISIONS[self.runtime])})"
            )


def parse_args(argv=None):
    return parse_config(LatencyConfig, __doc__, argv)


def build_runtime(
    model, runtime, precision, image_size, scratch_dir, threads=None, low_res_logits=False
):
    """`model` as a runtime of `semseg.runtime.runtimes` in `precision`, exported if needed.

    Args:
        model: a Keras model built with a static `input_shape=(H, W, C)`.
        runtime: a key of `PRECISIONS`.
        precision: one of `PRECISIONS[runtime]`.
        image_size: `(height, width)` to export at.
        scratch_dir: folder for exported files.
        threads: CPU threads of TFLite, ONNX Runtime and OpenVINO.
        low_res_logits: export the model without its final upsampling
            (`semseg.export.export.low_res_logits_model`).

    Returns:
        A callable runtime from float32 `(B, H, W, C)` pixels to logits.
    """
    import numpy as np

    from semseg.export import export
    from semseg.runtime import runtimes

    num_channels = model.inputs[0].shape[-1]
    if low_res_logits:
        model = export.low_res_logits_model(model)
    if runtime == "keras":
        return runtimes.KerasRuntime(model, num_channels, precision=precision)
    if runtime == "xla":
        return runtimes.XlaRuntime(model, num_channels, precision=precision)
    quantize = None if precision == "fp32" else precision
    calibration = None
    if quantize == "int8":
        rng = np.random.default_rng(0)
        calibration = [
            rng.uniform(0.0, 255.0, (*image_size, num_channels)).astype(np.float32)
            for _ in range(CALIBRATION_IMAGES)
        ]
    name = export.default_file_name(model.name, runtime, quantize)
    path = export.export_model(
        model,
        Path(scratch_dir) / name,
        runtime,
        image_size,
        num_channels,
        quantize=quantize,
        calibration_images=calibration,
    )
    return runtimes.load_runtime(path, num_channels, threads)


def predictor_latency(runtime, image_size, num_classes, args):
    """`measure_latency`'s figures for `Predictor.predict` of one random uint8 frame."""
    import numpy as np

    from semseg.base.labels import LabelSpec
    from semseg.predict.inference import Predictor
    from semseg.runtime.latency import summarize, time_function

    labels = LabelSpec([f"class_{index}" for index in range(num_classes)])
    predictor = Predictor(runtime, labels, image_size)
    frame = np.random.default_rng(0).integers(0, 256, (*image_size, 3), dtype=np.uint8)
    durations = time_function(lambda: predictor.predict(frame), args.runs, args.warmup)
    return {**summarize(durations), "threads": args.threads or os.cpu_count()}


def main(args):
    if args.runtime in TENSORFLOW_RUNTIMES and args.threads:
        from semseg.runtime.runtimes import configure_tensorflow_threads

        configure_tensorflow_threads(args.threads)
    import keras

    import models
    from semseg.runtime.latency import measure_latency

    if args.model not in models.MODELS:
        raise InputError(
            f"--model must be one of {', '.join(models.MODELS)}. Received: {args.model}"
        )
    height, width = args.image_size
    keras.utils.set_random_seed(0)
    model = models.build_model(args.model, args.num_classes, input_shape=(height, width, 3))
    with tempfile.TemporaryDirectory(prefix="latency_") as scratch_dir:
        runtime = build_runtime(
            model,
            args.runtime,
            args.precision,
            (height, width),
            scratch_dir,
            args.threads,
            args.low_res_logits,
        )
        if args.end_to_end:
            stats = predictor_latency(runtime, (height, width), args.num_classes, args)
        else:
            stats = measure_latency(runtime, (height, width), runs=args.runs, warmup=args.warmup)
    result = {
        "model": args.model,
        "runtime": args.runtime,
        "precision": args.precision,
        "image_size": [height, width],
        "median_ms": round(stats["p50"], 2),
        "p95_ms": round(stats["p95"], 2),
        "runs": stats["runs"],
        "threads": args.threads or stats["threads"],
        "end_to_end": args.end_to_end,
        "low_res_logits": args.low_res_logits,
    }
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    run_command(main, parse_args, log_level=None)
