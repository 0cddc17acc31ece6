"""Resident memory of a training run over its epochs, with glibc malloc and with tcmalloc.

Examples:

    python bench/memory.py
    python bench/memory.py --epochs 5 --image_size 160 160 --batch_size 16
    python bench/memory.py --allocators tcmalloc

Generates the demo dataset (`full_semantic.demo_data`, 160x160 scenes) into a temporary
folder, builds it with `full_semantic/cvat`, then runs `train.py` on it once per
allocator: plain (glibc malloc) and with
`LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4` (Debian
`libtcmalloc-minimal4`). The training process's resident set size (VmRSS) is
sampled every 0.2 s; the value at the end of each epoch (when `history.csv`
gains a row) and the peak are reported.

Prints one JSON line per allocator: {"benchmark": "memory", "allocator",
"epochs", "image_size", "batch_size", "rss_mb" (one per epoch), "peak_rss_mb",
"growth_mb" (last epoch minus first), "seconds"}.
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
PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from bench.options import TcmallocOptions  # noqa: E402
from semseg.base.cli import at_least, option, parse_config, run_command, size_at_least  # noqa: E402
from semseg.base.errors import InputError  # noqa: E402

ALLOCATORS = ("malloc", "tcmalloc")
SAMPLE_SECONDS = 0.2


@dataclasses.dataclass
class MemoryConfig(TcmallocOptions):
    epochs: int = option(5, check=at_least(2))
    # The demo's size: the benchmark is about the allocator, not the model.
    image_size: tuple[int, int] = option(
        (160, 160), "training height and width", check=size_at_least(32)
    )
    batch_size: int = option(16, check=at_least(1))
    num_train: int = option(96, "demo training images", check=at_least(1))
    allocators: tuple[str, ...] = option(ALLOCATORS, choices=ALLOCATORS)


def parse_args(argv=None):
    return parse_config(MemoryConfig, __doc__, argv)


def resident_mb(pid):
    """VmRSS of process `pid` in MiB, or `None` once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def build_demo_dataset(folder, image_size, num_train):
    """Writes the demo CVAT export into `folder` and builds it; returns the data dir."""

    from full_semantic.demo_data import write_demo_export
    from full_semantic.prepare import build_dataset

    export = write_demo_export(
        folder / "export", num_train=num_train, num_val=16, size=tuple(image_size), seed=0
    )
    build_dataset("cvat", export, folder / "tfds")
    return folder / "tfds"


def measure(allocator, data_dir, work_dir, args):
    """Trains once under `allocator` and samples the training process's memory."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    environment.pop("LD_PRELOAD", None)
    if allocator == "tcmalloc":
        environment["LD_PRELOAD"] = args.tcmalloc
    command = [
        sys.executable,
        str(PROJECT_ROOT / "train.py"),
        "--dataset", "full_semantic/cvat",
        "--data_dir", str(data_dir),
        "--image_size", *map(str, args.image_size),
        "--batch_size", str(args.batch_size),
        "--epochs", str(args.epochs),
        "--optimizer", "adamw",
        "--learning_rate", "0.003",
        "--vis_every", "0",
        "--work_dir", str(work_dir),
    ]  # fmt: skip
    history = work_dir / "history.csv"
    per_epoch, peak = [], 0.0
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, env=environment, stdout=log, stderr=log)
        while process.poll() is None:
            rss = resident_mb(process.pid)
            if rss is not None:
                peak = max(peak, rss)
                rows = len(history.read_text().splitlines()) - 1 if history.is_file() else 0
                while len(per_epoch) < rows:
                    per_epoch.append(rss)
            time.sleep(SAMPLE_SECONDS)
        if process.returncode != 0:
            log.seek(0)
            tail = log.read().strip().splitlines()[-1:] or ["(no output)"]
            raise InputError(f"train.py under {allocator} failed: {tail[0]}")
    return {
        "benchmark": "memory",
        "allocator": allocator,
        "epochs": args.epochs,
        "image_size": list(args.image_size),
        "batch_size": args.batch_size,
        "rss_mb": [round(value, 1) for value in per_epoch],
        "peak_rss_mb": round(peak, 1),
        "growth_mb": round(per_epoch[-1] - per_epoch[0], 1) if per_epoch else None,
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(args):
    if "tcmalloc" in args.allocators and not Path(args.tcmalloc).is_file():
        raise InputError(
            f"{args.tcmalloc}: no such library; install it (apt-get install "
            "libtcmalloc-minimal4) or give --tcmalloc PATH"
        )
    results = []
    with tempfile.TemporaryDirectory(prefix="semseg-memory-") as folder:
        folder = Path(folder)
        data_dir = build_demo_dataset(folder, args.image_size, args.num_train)
        for allocator in args.allocators:
            result = measure(allocator, data_dir, folder / f"run_{allocator}", args)
            print(json.dumps(result), flush=True)
            results.append(result)
    return results


if __name__ == "__main__":
    run_command(main, parse_args, log_level=None)
