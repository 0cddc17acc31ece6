"""Batch-1 latency on the machine's accelerator: Keras + XLA, and TensorRT through ONNX.

What `bench/gpu_check.sh` times. On an NVIDIA GPU: DDRNet-23-slim and PIDNet-S (random
weights: speed does not depend on them) at 1024x2048 in fp16 (`KerasRuntime` and
`XlaRuntime` from `semseg.runtime.runtimes`), and through ONNX Runtime's TensorRT execution
provider in fp16 when `onnxruntime-gpu` and `tensorrt` are installed. Without a GPU
(`--smoke`) the same code runs on the CPU at a tiny size in fp32, to prove the script.

    python bench/gpu_latency.py                 # GPU, 1024x2048, fp16
    python bench/gpu_latency.py --smoke         # CPU: DDRNet-23-slim, Keras, 64x128, 5 runs

Prints one JSON line per measurement and a table last:

    model          runtime         precision  size       median ms  p95 ms
    ddrnet23_slim  keras           fp16       1024x2048  ...
"""

import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semseg.base.cli import Command, at_least, option, parse_config, size_at_least  # noqa: E402

MODELS = ("ddrnet23_slim", "pidnet_s")


@dataclasses.dataclass
class GpuLatencyConfig(Command):
    smoke: bool = option(False, "CPU, tiny size, few runs")
    image_size: tuple[int, int] | None = option(
        help="input height and width (default: 1024 2048, Cityscapes; 64 128 with --smoke)",
        check=size_at_least(1),
    )
    models: tuple[str, ...] | None = option(
        help=f"default: {' '.join(MODELS)} (ddrnet23_slim with --smoke)"
    )
    runs: int | None = option(help="timed calls (default 50; 5 with --smoke)", check=at_least(1))
    num_classes: int = option(19, check=at_least(1))


def parse_args(argv=None):
    return parse_config(GpuLatencyConfig, __doc__, argv)


def tensorrt_session(model, size, precision, directory):
    """An ONNX Runtime session on the TensorRT execution provider, or `(None, reason)`."""
    try:
        import onnxruntime
    except ImportError as error:
        return None, f"onnxruntime not installed ({error})"
    if "TensorrtExecutionProvider" not in onnxruntime.get_available_providers():
        return None, "ONNX Runtime has no TensorrtExecutionProvider (onnxruntime-gpu, tensorrt)"
    from semseg.export.export import export_model

    path = export_model(model, Path(directory) / f"{model.name}.onnx", "onnx", size)
    options = {"trt_fp16_enable": precision == "fp16", "trt_engine_cache_enable": True}
    options["trt_engine_cache_path"] = str(directory)
    session = onnxruntime.InferenceSession(
        str(path),
        providers=[("TensorrtExecutionProvider", options), "CUDAExecutionProvider"],
    )
    name = session.get_inputs()[0].name
    return (lambda images: session.run(None, {name: images})[0]), None


def main(args):
    import numpy as np
    import tensorflow as tf

    import models
    from bench.report import describe_machine
    from semseg.runtime.latency import device_description, measure_latency
    from semseg.runtime.runtimes import KerasRuntime, XlaRuntime

    gpu = bool(tf.config.list_physical_devices("GPU"))
    if not gpu and not args.smoke:
        sys.exit("error: no GPU is visible to TensorFlow; run with --smoke on a CPU")
    size = tuple(args.image_size or ((64, 128) if args.smoke else (1024, 2048)))
    precision = "fp16" if gpu else "fp32"
    runs = args.runs or (5 if args.smoke else 50)
    device = device_description()["device"]
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for name in args.models or (MODELS[:1] if args.smoke else MODELS):
            model = models.build_model(name, num_classes=args.num_classes, input_shape=(*size, 3))
            forwards = {"keras": KerasRuntime(model, 3, precision)}
            if not args.smoke:  # XLA's CPU compile takes longer than the smoke's timing
                forwards["keras+xla"] = XlaRuntime(model, 3, precision)
            if gpu:
                session, reason = tensorrt_session(model, size, precision, directory)
                if session is None:
                    print(json.dumps({"model": name, "runtime": "tensorrt", "skipped": reason}))
                else:
                    forwards["tensorrt"] = session
            for runtime, forward in forwards.items():
                timing = measure_latency(forward, size, runs=runs, warmup=min(10, runs))
                row = {
                    "model": name,
                    "runtime": runtime,
                    "precision": precision,
                    "image_size": list(size),
                    "median_ms": round(float(timing["p50"]), 3),
                    "p95_ms": round(float(timing["p95"]), 3),
                    "runs": runs,
                    "device": device,
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
    header = f"{'model':<15}{'runtime':<12}{'precision':<11}{'size':<11}"
    header += f"{'median ms':>10}{'p95 ms':>9}"
    machine = describe_machine()
    print(
        f"\n{device}; CPU {machine['cpu']} flags {machine['cpu_flags']}, "
        f"load average {machine['load_average']}\n{header}"
    )
    for row in rows:
        size_text = "x".join(str(side) for side in row["image_size"])
        print(
            f"{row['model']:<15}{row['runtime']:<12}{row['precision']:<11}{size_text:<11}"
            f"{row['median_ms']:>10.2f}{row['p95_ms']:>9.2f}"
        )
    if not np.isfinite([row["median_ms"] for row in rows]).all():
        sys.exit("error: a latency is not finite")


if __name__ == "__main__":
    main(parse_args())
