r"""How close a model runs to the machine's limit: its compute floor, measured.

Examples:

    python bench/compute_floor.py                       # DDRNet-lite at 480x640
    python bench/compute_floor.py --models ddrnet_lite ddrnet23_slim \
        --runtimes openvino:bf16 onnx:fp32 --rounds 7

For each runtime (`RUNTIME:PRECISION` of bench/latency.py) it measures:

1. the machine's convolution throughput: a stack of 3x3 convolutions (stride 1, same
   padding, batch norm folded, ReLU) at each feature size and width the model's own
   3x3 convolutions run at, timed on that runtime (GMAC/s, median);
2. the model's compute floor: each convolution's multiply-adds divided by that
   throughput at its feature size (the nearest measured one), summed, so the floor is
   what the convolutions alone would take at the speed the machine reaches on plain
   convolutions of the same shapes;
3. the model's latency on that runtime (batch 1, medians, in turn with the
   convolution stacks so that a noisy neighbour slows both alike) and its ratio to
   the floor;
4. on OpenVINO, where the time goes: its per-layer counters summed by layer type.

Prints one JSON line per measurement: {"kind": "throughput" | "model" | "profile",
...}, and a last line with the machine (CPU, flags, load average).
"""

import collections
import dataclasses
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.options import AlternatingOptions, InferenceSizeOptions  # noqa: E402
from bench.peers import alternate  # noqa: E402
from semseg.base.cli import at_least, option, parse_config, run_command  # noqa: E402

STACK_DEPTH = 6


@dataclasses.dataclass
class ComputeFloorConfig(AlternatingOptions, InferenceSizeOptions):
    models: tuple[str, ...] = option(("ddrnet_lite",), "names of models.MODELS")
    num_classes: int = option(19, check=at_least(1))
    runs: int = option(10, "timed calls per round", check=at_least(1))
    low_res_logits: bool = option(
        False, "time the models without their final upsampling (export.py --low_res_logits)"
    )


def parse_args(argv=None):
    return parse_config(ComputeFloorConfig, __doc__, argv)


def convolutions(model):
    """`[(name, (height, width), in_channels, out_channels, kernel, groups, macs)]` of
    every convolution of a model built at a static size."""
    import keras

    found = []
    for layer in model.layers:
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            continue
        _, height, width, out_channels = layer.output.shape
        in_channels = layer.input.shape[-1]
        kernel = layer.kernel_size[0] * layer.kernel_size[1]
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            groups, out_channels = in_channels, in_channels * layer.depth_multiplier
        else:
            groups = getattr(layer, "groups", 1)
        macs = height * width * kernel * in_channels * out_channels // groups
        found.append(
            (
                layer.name,
                (height, width),
                in_channels,
                out_channels,
                layer.kernel_size,
                groups,
                macs,
            )
        )
    return found


def stack_shapes(convs):
    """The `(height, width, channels)` of the 3x3 stacks to time: per feature size, the
    output width carrying most of the model's 3x3 multiply-adds there."""
    by_size = collections.defaultdict(collections.Counter)
    for _, size, _, out_channels, kernel, groups, macs in convs:
        if tuple(kernel) == (3, 3) and groups == 1:
            by_size[size][out_channels] += macs
    return sorted(
        ((*size, counter.most_common(1)[0][0]) for size, counter in by_size.items()),
        reverse=True,
    )


def conv_stack(height, width, channels):
    """`STACK_DEPTH` 3x3 convolutions with batch norm and ReLU at `(height, width,
    channels)`, and its multiply-adds."""
    import keras

    inputs = keras.Input((height, width, channels))
    x = inputs
    for index in range(STACK_DEPTH):
        x = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False, name=f"c{index}")(x)
        x = keras.layers.BatchNormalization(name=f"b{index}")(x)
        x = keras.layers.ReLU(name=f"r{index}")(x)
    model = keras.Model(inputs, x, name=f"stack_{height}x{width}x{channels}")
    return model, STACK_DEPTH * height * width * 9 * channels * channels


def runtime_call(model, choice, threads, folder, channels, low_res_logits=False):
    """`(call, runtime)`: one batch-1 call of `model` on `RUNTIME:PRECISION` (exported
    into `folder` under its default name)."""
    import numpy as np

    from bench.latency import build_runtime

    runtime_name, _, precision = choice.partition(":")
    height, width = model.inputs[0].shape[1:3]
    runtime = build_runtime(
        model, runtime_name, precision or "fp32", (height, width), folder, threads, low_res_logits
    )
    images = np.random.default_rng(0).uniform(0, 255, (1, height, width, channels))
    images = images.astype(np.float32)
    return (lambda: runtime(images)), runtime


def floor_ms(convs, throughput):
    """Milliseconds the model's convolutions take at `throughput` (GMAC/s by feature
    height), each at the measured size nearest its own."""
    heights = sorted(throughput)
    total = 0.0
    for _, (height, _), *_, macs in convs:
        nearest = min(heights, key=lambda measured: abs(measured - height))
        total += macs / (throughput[nearest] * 1e9) * 1000.0
    return total


def openvino_profile(folder, threads, runs=20):
    """`{layer type: share of the time}` from OpenVINO's per-layer counters, for the IR
    folder an export wrote."""
    import numpy as np

    from semseg.runtime.runtimes import OpenVinoRuntime

    runtime = OpenVinoRuntime(folder, threads, perf_count=True)
    images = np.random.default_rng(0).uniform(0, 255, (1, *runtime.fixed_size, 3))
    totals = collections.Counter()
    for _ in range(runs):
        runtime(images)
        for info in runtime.request.profiling_info:
            totals[info.node_type] += info.real_time.total_seconds()
    whole = sum(totals.values()) or 1.0
    return {kind: round(seconds / whole, 3) for kind, seconds in totals.most_common(8)}


def main(args):
    import keras

    import models
    from bench.report import describe_machine
    from semseg.export.export import default_file_name
    from semseg.runtime import cost

    size = tuple(args.image_size)
    rows = []
    with tempfile.TemporaryDirectory(prefix="compute_floor_") as folder:
        for model_name in args.models:
            keras.utils.set_random_seed(0)
            model = models.build_model(model_name, args.num_classes, input_shape=(*size, 3))
            convs = convolutions(model)
            gmacs = cost.count_flops(model, size) / 2e9
            conv_gmacs = sum(row[-1] for row in convs) / 1e9
            stacks = {shape: conv_stack(*shape) for shape in stack_shapes(convs)}
            for choice in args.runtimes:
                calls, macs = {}, {}
                for shape, (stack, stack_macs) in stacks.items():
                    calls[shape], _ = runtime_call(stack, choice, args.threads, folder, shape[2])
                    macs[shape] = stack_macs
                calls["model"], _ = runtime_call(
                    model, choice, args.threads, folder, 3, args.low_res_logits
                )
                times = alternate(calls, args.rounds, args.runs)
                medians = {name: statistics.median(values) for name, values in times.items()}
                throughput = {
                    shape[0]: macs[shape] / (medians[shape] / 1000.0) / 1e9 for shape in stacks
                }
                for shape in stacks:
                    row = {
                        "kind": "throughput",
                        "runtime": choice,
                        "shape": list(shape),
                        "gmac_per_s": round(throughput[shape[0]], 1),
                    }
                    print(json.dumps(row), flush=True)
                floor = floor_ms(convs, throughput)
                row = {
                    "kind": "model",
                    "model": model_name,
                    "runtime": choice,
                    "image_size": list(size),
                    "gmacs": round(gmacs, 3),
                    "conv_gmacs": round(conv_gmacs, 3),
                    "median_ms": round(medians["model"], 2),
                    "floor_ms": round(floor, 3),
                    "ratio": round(medians["model"] / floor, 3),
                    "low_res_logits": args.low_res_logits,
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
                runtime_name, _, precision = choice.partition(":")
                if runtime_name == "openvino":
                    quantize = None if precision in ("", "fp32") else precision
                    name = default_file_name(model.name, "openvino", quantize, args.low_res_logits)
                    path = Path(folder) / name
                    profile = openvino_profile(path, args.threads)
                    row = {"kind": "profile", "model": model_name, "runtime": choice}
                    print(json.dumps({**row, "time_share": profile}), flush=True)
    print(json.dumps({"kind": "machine", **describe_machine()}), flush=True)
    return rows


if __name__ == "__main__":
    run_command(main, parse_args, log_level=None)
