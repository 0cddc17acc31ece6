"""Where int8 inference spends its time on this CPU, against fp32, in one run.

Issue 20: on an AVX2-only CPU (no VNNI) DDRNet-23-slim's int8 exports run slower than
fp32. This benchmark separates the suspects, each timed in alternating rounds (medians):

* the runtime's kernels: TFLite with XNNPACK (the default) against TFLite's own
  built-in kernels (`BUILTIN_WITHOUT_DEFAULT_DELEGATES`), for fp32 and int8;
* how much of the int8 graph XNNPACK takes: the number of delegate partitions (ops it
  cannot run in int8 split the graph and run in the built-in kernels between them);
* ONNX Runtime's int8 weights per channel against per tensor (QDQ, uint8 activations);
* the convolutions alone: a stack of six 3x3 convolutions (64 channels, at 1/4 of the
  image size) in TFLite fp32 and int8, as multiply-adds per second.

    python bench/int8_profile.py                      # 480x640, 2 threads
    python bench/int8_profile.py --image_size 240 320 --rounds 3

Prints one JSON line per variant and a summary line with the CPU flags, the load average
and the int8/fp32 ratios. Random weights and calibration images: speed does not depend
on them.
"""

import collections
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.options import InferenceSizeOptions  # noqa: E402
from semseg.base.cli import at_least, option, parse_config  # noqa: E402


@dataclasses.dataclass
class Int8ProfileConfig(InferenceSizeOptions):
    model: str = option("ddrnet23_slim", "a name of models.MODELS")
    threads: int = option(2, check=at_least(1))
    rounds: int = option(5, "alternating rounds", check=at_least(1))
    calls: int = option(10, "timed calls per round", check=at_least(1))


def parse_args(argv=None):
    return parse_config(Int8ProfileConfig, __doc__, argv)


def tflite_forward(path, threads, delegates):
    import tensorflow as tf

    resolver = tf.lite.experimental.OpResolverType
    interpreter = tf.lite.Interpreter(
        str(path),
        num_threads=threads,
        experimental_op_resolver_type=(
            resolver.AUTO if delegates else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        ),
    )
    interpreter.allocate_tensors()
    ops = collections.Counter(op["op_name"] for op in interpreter._get_ops_details())
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]

    def forward(images):
        interpreter.set_tensor(source["index"], images)
        interpreter.invoke()
        return interpreter.get_tensor(target["index"])

    return forward, {"partitions": ops.get("DELEGATE", 0)}


def onnx_forward(path, threads):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return (lambda images: session.run(None, {name: images})[0]), {}


def quantize_onnx(float_path, path, images, per_channel):
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    input_name = onnx.load(str(float_path)).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.images = iter(images)

        def get_next(self):
            image = next(self.images, None)
            return None if image is None else {input_name: image[None]}

    quantize_static(
        str(float_path), str(path), Reader(), quant_format=QuantFormat.QDQ,
        per_channel=per_channel, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
    )  # fmt: skip


def conv_stack(size, channels=64, depth=6):
    """Six 3x3 convolutions at `size`: the bulk of a segmentation network's work."""
    import keras

    inputs = keras.Input((*size, channels), batch_size=1)
    features = inputs
    for _ in range(depth):
        features = keras.layers.Conv2D(channels, 3, padding="same", activation="relu")(features)
    return keras.Model(inputs, features), depth * size[0] * size[1] * channels * channels * 9


def main(args):
    import numpy as np

    import models
    from bench.report import describe_machine
    from semseg.export.export import export_model
    from semseg.runtime.latency import time_function

    size = tuple(args.image_size)
    model = models.build_model(args.model, num_classes=19, input_shape=(*size, 3))
    generator = np.random.default_rng(0)
    calibration = [generator.uniform(0, 255, (*size, 3)).astype(np.float32) for _ in range(8)]
    images = generator.uniform(0, 255, (1, *size, 3)).astype(np.float32)
    variants = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        fp32_tflite = export_model(model, scratch / "fp32.tflite", "tflite", size)
        int8_tflite = export_model(
            model, scratch / "int8.tflite", "tflite", size, quantize="int8",
            calibration_images=calibration,
        )  # fmt: skip
        fp32_onnx = export_model(model, scratch / "fp32.onnx", "onnx", size)
        for per_channel in (True, False):
            name = "int8_per_channel" if per_channel else "int8_per_tensor"
            quantize_onnx(fp32_onnx, scratch / f"{name}.onnx", calibration, per_channel)
        for precision, path in (("fp32", fp32_tflite), ("int8", int8_tflite)):
            for delegates, kernels in ((True, "xnnpack"), (False, "builtin")):
                variants[f"tflite {precision} {kernels}"] = tflite_forward(
                    path, args.threads, delegates
                )
        variants["onnx fp32"] = onnx_forward(fp32_onnx, args.threads)
        for name in ("int8_per_channel", "int8_per_tensor"):
            variants[f"onnx {name.replace('_', ' ', 1)}"] = onnx_forward(
                scratch / f"{name}.onnx", args.threads
            )
        conv_size = (max(size[0] // 4, 8), max(size[1] // 4, 8))
        convs, macs = conv_stack(conv_size)
        conv_calibration = [generator.uniform(0, 1, (*conv_size, 64)).astype(np.float32)]
        inputs = {name: images for name in variants}
        for precision in ("fp32", "int8"):
            path = export_model(
                convs, scratch / f"convs_{precision}.tflite", "tflite", conv_size, 64,
                quantize="int8" if precision == "int8" else None,
                calibration_images=conv_calibration * 4,
            )  # fmt: skip
            name = f"conv3x3 stack {precision} xnnpack"
            variants[name] = tflite_forward(path, args.threads, True)
            inputs[name] = conv_calibration[0][None]
        times = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, (forward, _) in variants.items():
                batch = inputs[name]
                durations = time_function(lambda: forward(batch), runs=args.calls, warmup=2)
                times[name].extend(durations.tolist())
    medians = {name: float(np.median(values)) for name, values in times.items()}
    for name, (_, details) in variants.items():
        if name.startswith("conv3x3"):
            details = dict(details, gmac_per_s=round(macs / medians[name] / 1e6, 1))
        print(json.dumps({"variant": name, "median_ms": round(medians[name], 2), **details}))
    machine = describe_machine()
    ratios = {
        "tflite_int8_over_fp32_xnnpack": medians["tflite int8 xnnpack"]
        / medians["tflite fp32 xnnpack"],
        "tflite_int8_xnnpack_over_builtin": medians["tflite int8 xnnpack"]
        / medians["tflite int8 builtin"],
        "onnx_int8_per_channel_over_fp32": medians["onnx int8 per_channel"] / medians["onnx fp32"],
        "onnx_int8_per_tensor_over_fp32": medians["onnx int8 per_tensor"] / medians["onnx fp32"],
        "conv3x3_int8_over_fp32": medians["conv3x3 stack int8 xnnpack"]
        / medians["conv3x3 stack fp32 xnnpack"],
    }
    print(
        json.dumps(
            {
                "summary": {key: round(value, 3) for key, value in ratios.items()},
                "model": args.model,
                "image_size": list(size),
                "threads": args.threads,
                "cpu": machine["cpu"],
                "cpu_flags": machine["cpu_flags"],
                "load_average": machine["load_average"],
            }
        )
    )


if __name__ == "__main__":
    main(parse_args())
