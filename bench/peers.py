r"""Latency against the model users would pick instead: Ultralytics YOLO26n-sem on ONNX
Runtime fp32 and on Ultralytics' own OpenVINO export, alternating in one run with our
models on every runtime; best against best.

Examples:

    make bench-peers                     # makes build/peers-venv, then runs this
    python bench/peers.py --peer_python build/peers-venv/bin/python
    python bench/peers.py --peer_onnx yolo26n-sem.onnx --peer_openvino yolo26n-sem_openvino \
        --models ddrnet23_slim pidnet_s --runtimes onnx:fp32 tflite:int8 openvino:bf16 --rounds 7

The peer is exported once by `bench/peer_export.py` in its own virtualenv (random
weights: speed does not depend on them), to ONNX and to OpenVINO. It runs here on the
project's ONNX Runtime and on OpenVINO compiled as Ultralytics' runtime compiles it
(latency hint, OpenVINO's default precision for the CPU: bf16 on CPUs with bfloat16
instructions), with the same thread count as ours. Every contestant runs `--runs` calls
per round, in turn, for `--rounds` rounds, so that a noisy neighbour slows all of them
alike; the figures are medians over all rounds. Batch 1, random input at `--image_size`.
The peer's graph ends in an ArgMax: its output is a full-resolution class map. Ours
give, with `--outputs`, `logits`: the export's full-resolution logits, and `class_map`:
the same full-resolution class map as the peer, from the export ending at the head
(`export.py --low_res_logits`) and the predictor's upsampling and argmax
(`semseg.base.logits.upsampled_class_ids`), timed together. Its cost depends on how many
cells of the logits straddle a class border: with random weights on random input about
a third, more than a trained model has (15% on the dash-cam clip), so the
figure errs on the slow side.

Prints one JSON line per contestant {"name", "median_ms", "p95_ms", "runs"}, then a
summary {"machine" (CPU, its flags, load average), "peer", "peer_best", "peer_ms",
"best", "best_ms", "best_over_peer"} where `best_over_peer` < 1 means our fastest is
faster than the peer's fastest.
"""

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.options import AlternatingOptions, InferenceSizeOptions  # noqa: E402
from semseg.base.cli import at_least, option, parse_config, run_command  # noqa: E402
from semseg.base.errors import InputError  # noqa: E402

PEER = "yolo26n-sem"
OUTPUTS = ("logits", "class_map")


@dataclasses.dataclass
class PeersConfig(AlternatingOptions, InferenceSizeOptions):
    peer_python: str | None = option(help="python of the peers' virtualenv (exports the peer)")
    peer_onnx: str | None = option(help="an already exported peer .onnx (NCHW, 0..1 input)")
    peer_openvino: str | None = option(
        help="with --peer_onnx: the peer's OpenVINO IR folder (Ultralytics' export)"
    )
    models: tuple[str, ...] = option(("ddrnet_lite", "ddrnet23_slim"))
    runs: int = option(20, "timed calls per round", check=at_least(1))
    num_classes: int = option(19, check=at_least(1))
    outputs: tuple[str, ...] = option(
        OUTPUTS, "what our models output (see above)", choices=OUTPUTS
    )

    def check_together(self):
        super().check_together()
        if (self.peer_python is None) == (self.peer_onnx is None):
            raise InputError("give one of --peer_python and --peer_onnx")


def parse_args(argv=None):
    return parse_config(PeersConfig, __doc__, argv)


def export_peer(peer_python, image_size, folder):
    """The peer's ONNX file and OpenVINO folder, exported by `bench/peer_export.py` under
    `peer_python`, and what it printed."""
    output = Path(folder) / f"{PEER}.onnx"
    openvino_output = Path(folder) / f"{PEER}_openvino"
    result = subprocess.run(
        [
            str(peer_python),
            str(ROOT / "bench" / "peer_export.py"),
            "--model",
            f"{PEER}.yaml",
            "--image_size",
            *map(str, image_size),
            "--output",
            str(output),
            "--openvino_output",
            str(openvino_output),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise InputError(f"{peer_python} bench/peer_export.py failed: {last}")
    return output, openvino_output, json.loads(result.stdout.strip().splitlines()[-1])


def onnx_peer(path, threads):
    """A callable running the peer's ONNX model on ONNX Runtime (CPU, `threads` threads)."""
    import numpy as np
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0]
    shape = [dimension if isinstance(dimension, int) else 1 for dimension in feed.shape]
    images = np.random.default_rng(0).uniform(0.0, 1.0, shape).astype(np.float32)
    return lambda: session.run(None, {feed.name: images})


def openvino_peer(folder, threads):
    """The peer's OpenVINO IR compiled as Ultralytics' runtime compiles it (CPU, latency
    hint, the precision OpenVINO picks for this CPU: bf16 where it has bfloat16
    instructions), on `threads` threads. Returns `(precision, call)`."""
    import numpy as np
    import openvino

    core = openvino.Core()
    model = core.read_model(str(next(Path(folder).glob("*.xml"))))
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    shape = [dimension.get_length() for dimension in compiled.input(0).get_partial_shape()]
    images = np.random.default_rng(0).uniform(0.0, 1.0, shape).astype(np.float32)
    precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    return precision, lambda: request.infer({0: images})


def ours(model_name, runtime, precision, output, image_size, threads, num_classes, folder):
    """A callable running one of our models on `runtime` / `precision` (bench/latency.py)
    to its `output` (one of `OUTPUTS`)."""
    import keras
    import numpy as np

    import models
    from bench.latency import build_runtime
    from semseg.base.logits import upsampled_class_ids

    keras.utils.set_random_seed(0)
    model = models.build_model(model_name, num_classes, input_shape=(*image_size, 3))
    class_map = output == "class_map"
    forward = build_runtime(
        model, runtime, precision, image_size, folder, threads, low_res_logits=class_map
    )
    images = np.random.default_rng(0).uniform(0.0, 255.0, (1, *image_size, 3))
    images = images.astype(np.float32)
    if class_map:
        return lambda: upsampled_class_ids(forward(images), image_size)
    return lambda: forward(images)


def alternate(contestants, rounds, runs, warmup=3):
    """Times `{name: call}` in turn, `runs` calls each per round, for `rounds` rounds.

    Returns:
        `{name: [milliseconds per call]}`, every call of every round.
    """
    times = {name: [] for name in contestants}
    for call in contestants.values():
        for _ in range(warmup):
            call()
    for _ in range(rounds):
        for name, call in contestants.items():
            for _ in range(runs):
                start = time.perf_counter()
                call()
                times[name].append(1000.0 * (time.perf_counter() - start))
    return times


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main(args):
    if args.peer_onnx and not Path(args.peer_onnx).is_file():
        raise InputError(f"--peer_onnx {args.peer_onnx}: no such file")
    from bench.options import TENSORFLOW_RUNTIMES
    from bench.report import describe_machine
    from semseg.runtime.runtimes import configure_tensorflow_threads

    if any(choice.partition(":")[0] in TENSORFLOW_RUNTIMES for choice in args.runtimes):
        try:
            configure_tensorflow_threads(args.threads)
        except RuntimeError:  # TensorFlow already ran in this process (tests)
            message = (
                f"TensorFlow keeps its thread count; --threads {args.threads} is for the others"
            )
            print(message, file=sys.stderr)
    image_size = tuple(args.image_size)
    with tempfile.TemporaryDirectory(prefix="peers_") as folder:
        if args.peer_onnx:
            peer_path, peer_openvino = Path(args.peer_onnx), args.peer_openvino
            peer_info = {"peer": PEER, "onnx": args.peer_onnx, "openvino": peer_openvino}
        else:
            peer_path, peer_openvino, peer_info = export_peer(args.peer_python, image_size, folder)
        contestants = {f"{PEER} onnx fp32": onnx_peer(peer_path, args.threads)}
        if peer_openvino:
            precision, call = openvino_peer(peer_openvino, args.threads)
            contestants[f"{PEER} openvino {precision}"] = call
        peers = list(contestants)
        for model_name in args.models:
            for choice in args.runtimes:
                runtime, _, precision = choice.partition(":")
                precision = precision or "fp32"
                for output in args.outputs:
                    contestants[f"{model_name} {runtime} {precision} {output}"] = ours(
                        model_name,
                        runtime,
                        precision,
                        output,
                        image_size,
                        args.threads,
                        args.num_classes,
                        folder,
                    )
        times = alternate(contestants, args.rounds, args.runs)
    medians = {}
    for name, values in times.items():
        medians[name] = percentile(values, 0.5)
        print(
            json.dumps(
                {
                    "name": name,
                    "median_ms": round(medians[name], 2),
                    "p95_ms": round(percentile(values, 0.95), 2),
                    "runs": len(values),
                }
            ),
            flush=True,
        )
    # Best against best: our fastest runtime against the peer's fastest.
    peer_best = min(peers, key=medians.get)
    best = min((name for name in medians if name not in peers), key=medians.get)
    summary = {
        "machine": describe_machine(),
        "image_size": list(image_size),
        "threads": args.threads,
        "peer": peer_info,
        "peer_best": peer_best,
        "peer_ms": round(medians[peer_best], 2),
        "best": best,
        "best_ms": round(medians[best], 2),
        "best_over_peer": round(medians[best] / medians[peer_best], 3),
    }
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    run_command(main, parse_args, log_level=None)
