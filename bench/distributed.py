"""Training step time on several devices (MirroredStrategy) against one device.

Examples:

    python bench/distributed.py
    python bench/distributed.py --image_size 360 480 --batch_size 8 --devices 2 4

Runs `bench/train_step.py` in a fresh process per configuration (logical
devices must be set before TensorFlow starts): once on one device, then with
the CPU split into N logical devices under `MirroredStrategy` with
synchronised batch norm, the code path of `train.py --multi_gpu`. The global
batch is the same in every configuration. On a CPU the devices share the same
cores, so the split measures the overhead of the multi-device path (replica
copies, gradient all-reduce, synchronised batch norm), not a speed-up; on a
multi-GPU machine the same command shows the scaling.

Prints one JSON line: {"benchmark": "distributed", "model", "image_size",
"batch_size", "single_step_ms", "runs": [{"replicas", "step_ms_median",
"images_per_s", "ratio"}]}, where `ratio` is the step time against one device.
"""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from bench.options import TrainingSizeOptions  # noqa: E402
from semseg.base.cli import at_least, option, parse_config, run_command  # noqa: E402
from semseg.base.errors import InputError  # noqa: E402


@dataclasses.dataclass
class DistributedConfig(TrainingSizeOptions):
    model: str = option("ddrnet23_slim")
    batch_size: int = option(8, "global batch", check=at_least(1))
    devices: tuple[int, ...] = option((2,), "logical device counts to compare")
    steps: int = option(10, check=at_least(1))
    warmup: int = option(3, check=at_least(0))

    def check_together(self):
        super().check_together()
        if any(devices < 2 or self.batch_size % devices for devices in self.devices):
            raise InputError(
                "--devices must be at least 2 and divide --batch_size. "
                f"Received: devices={list(self.devices)}, batch_size={self.batch_size}"
            )


def parse_args(argv=None):
    return parse_config(DistributedConfig, __doc__, argv)


def train_step(args, devices):
    """The JSON result of `bench/train_step.py` on `devices` logical CPU devices."""
    command = [
        sys.executable,
        str(PROJECT_ROOT / "bench" / "train_step.py"),
        "--model", args.model,
        "--image_size", *map(str, args.image_size),
        "--batch_size", str(args.batch_size),
        "--steps", str(args.steps),
        "--warmup", str(args.warmup),
        "--cpu_devices", str(devices),
    ]  # fmt: skip
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(command, capture_output=True, text=True, env=environment)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        message = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise InputError(f"bench/train_step.py --cpu_devices {devices} failed: {message}")
    return json.loads(lines[-1])


def main(args):
    single = train_step(args, 1)
    runs = []
    for devices in args.devices:
        measured = train_step(args, devices)
        runs.append(
            {
                "replicas": devices,
                "step_ms_median": measured["step_ms_median"],
                "images_per_s": measured["images_per_s"],
                "ratio": round(measured["step_ms_median"] / single["step_ms_median"], 2),
            }
        )
    result = {
        "benchmark": "distributed",
        "model": args.model,
        "image_size": list(args.image_size),
        "batch_size": args.batch_size,
        "single_step_ms": single["step_ms_median"],
        "runs": runs,
    }
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    run_command(main, parse_args, log_level=None)
