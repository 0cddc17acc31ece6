"""mIoU of a trained run in a reduced precision against its fp32 Keras model.

Examples:

    python bench/precision_accuracy.py --work_dir build/demo/run --runtime onnx --precision int8
    python bench/precision_accuracy.py --work_dir build/demo/run --runtime tflite --precision int8
    python bench/precision_accuracy.py --work_dir build/demo/run --runtime keras --precision bf16

Evaluates the run's `best` checkpoint as trained (fp32 Keras, no folding) and in
the requested runtime and precision on the whole validation split, each image
at its own resolution (as `eval.py`). Exported runtimes go through
`semseg.export.run.export_run` (int8 calibrated on 100 training images) into a
temporary folder, so the run is not modified.

Prints one JSON line: {"work_dir", "runtime", "precision", "split", "examples",
"miou_fp32", "miou", "miou_change", "max_abs_logit_diff"} (mIoU in 0..1, the
change in points of percent).
"""

import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.options import PRECISIONS  # noqa: E402
from semseg.base.cli import Command, at_least, option, parse_config, run_command  # noqa: E402
from semseg.base.errors import InputError  # noqa: E402


@dataclasses.dataclass
class PrecisionAccuracyConfig(Command):
    work_dir: str = option(required=True, help="work dir written by train.py")
    runtime: str = option("onnx", choices=tuple(PRECISIONS))
    precision: str = option("int8", choices=("fp32", "fp16", "bf16", "int8"))
    split: str | None = option(help="split to evaluate (default: the run's validation split)")
    calibration_steps: int = option(100, check=at_least(1))


def parse_args(argv=None):
    return parse_config(PrecisionAccuracyConfig, __doc__, argv)


def compare_precision(work_dir, runtime, precision, split=None, calibration_steps=100):
    """mIoU of `work_dir`'s best checkpoint in `runtime` / `precision` vs. fp32 Keras.

    Returns:
        dict as printed by this script.
    """
    from semseg.config.run import load_run
    from semseg.data import data
    from semseg.export import run as export
    from semseg.export.options import ExportConfig
    from semseg.export.verify import compare_with_keras
    from semseg.predict.inference import Predictor
    from semseg.runtime.runtimes import KerasRuntime, XlaRuntime, load_runtime

    if precision not in PRECISIONS[runtime]:
        raise InputError(
            f"--precision {precision} is not available for --runtime {runtime} "
            f"(offered: {', '.join(PRECISIONS[runtime])})"
        )
    run = load_run(work_dir)
    builder, _ = data.load_builder(run.config.dataset, run.config.data_dir)
    split = split or run.config.val_split
    count = data.num_examples(builder, split)
    if runtime in ("keras", "xla"):
        reference = Predictor(
            load_runtime(run.checkpoint_path("best"), run.num_channels, optimize=False),
            run.labels,
            run.config.image_size,
            run.num_channels,
        )
        runtime_class = XlaRuntime if runtime == "xla" else KerasRuntime
        candidate = Predictor(
            runtime_class(reference.model, run.num_channels, precision=precision),
            run.labels,
            run.config.image_size,
            run.num_channels,
        )
        scores = compare_with_keras(reference, candidate, builder, split, count)
    else:
        quantize = None if precision == "fp32" else precision
        with tempfile.TemporaryDirectory(prefix="precision_accuracy_") as scratch:
            name = export.default_file_name(run.config.model, runtime, quantize)
            _, description = export.export_run(
                ExportConfig(
                    work_dir=str(work_dir),
                    format=runtime,
                    quantize=quantize,
                    output=str(Path(scratch) / name),
                    calibration_steps=calibration_steps,
                    verify_examples=count,
                )
            )
        scores = {key: description[key] for key in ("miou_keras", "miou_exported")}
        scores.update(
            miou_change=description["miou_change"],
            max_abs_logit_diff=description["max_abs_logit_diff"],
        )
    return {
        "work_dir": str(work_dir),
        "runtime": runtime,
        "precision": precision,
        "split": split,
        "examples": count,
        "miou_fp32": round(scores["miou_keras"], 5),
        "miou": round(scores["miou_exported"], 5),
        "miou_change": round(scores["miou_change"], 3),
        "max_abs_logit_diff": round(scores["max_abs_logit_diff"], 5),
    }


def main(args):
    result = compare_precision(
        args.work_dir, args.runtime, args.precision, args.split, args.calibration_steps
    )
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    run_command(main, parse_args, log_level=None)
