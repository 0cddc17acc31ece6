"""The data build at scale: 20,000 images built plainly and on Apache Beam, then trained on.

Examples:

    python bench/build_scale.py
    python bench/build_scale.py --num_images 2000 --train_steps 50 --workers 2
    python bench/build_scale.py --repeats 5 --train_steps 0   # builds only

1. Writes a synthetic CVAT export (`full_semantic.demo_data` scenes, 480x360 JPEG images and
   PNG masks; `--num_val` of them in `val`) into `--work_dir`, or reuses the one there.
   `--distinct_scenes` scenes are drawn; every image is a mirrored, shifted and
   re-lit variant of one of them (`demo_data.scene_variant`).
2. Builds it with `tfds build full_semantic --config cvat`, once plainly and once with
   `--beam_pipeline_options "runner=DirectRunner,direct_num_workers=N,
   direct_running_mode=multi_processing"`, each into its own data dir, and samples the
   resident memory of the command and all its processes together every 0.2 s. Each
   build runs `--repeats` times, plain and Beam in turn.
3. Trains `--train_steps` steps (none with 0) on the Beam build (`train.py --steps`, a validation on
   the `val` split every `--steps_per_epoch` steps), with tcmalloc preloaded as docs/SCALING.md
   recommends (`--allocator malloc` for glibc's), and samples the training process's
   memory: at each validation, and its lowest and highest after the first one.

Prints one JSON line per build: {"benchmark": "build_scale", "mode" ("plain" or
"beam"), "workers", "num_images", "seconds", "images_per_s", "peak_rss_mb"}; then
{"benchmark": "build_scale_train", "steps", "batch_size", "image_size", "images_per_s"
(steps after the first validation, over their wall time), "rss_mb" (one per
validation), "rss_min_mb"/"rss_max_mb" (every sample from the first validation on) and
"rss_spread" (max / min - 1)}; last a summary line: the median images/s of each mode,
the Beam/plain ratio of those medians, the highest peak RSS of each. Run it on a quiet
machine.
"""

import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from bench.memory import SAMPLE_SECONDS  # noqa: E402
from bench.options import TcmallocOptions  # noqa: E402
from semseg.base.cli import (  # noqa: E402
    at_least,
    option,
    parse_config,
    run_command,
    size_at_least,
)
from semseg.base.errors import InputError  # noqa: E402

EXPORT_SIZE = (360, 480)  # height, width


@dataclasses.dataclass
class BuildScaleConfig(TcmallocOptions):
    num_images: int = option(20000, check=at_least(2))
    num_val: int = option(100, "of them in the val split", check=at_least(1))
    distinct_scenes: int = option(500, "scenes drawn", check=at_least(1))
    workers: int = option(2, "Beam worker processes", check=at_least(1))
    repeats: int = option(3, "builds of each mode", check=at_least(1))
    train_steps: int = option(200, "0: no training", check=at_least(0))
    steps_per_epoch: int = option(50, check=at_least(1))
    batch_size: int = option(8, check=at_least(1))
    image_size: tuple[int, int] = option(
        EXPORT_SIZE, "of the export's images", check=size_at_least(1)
    )
    model: str = option("ddrnet_lite")
    allocator: str = option("tcmalloc", "of training", choices=("tcmalloc", "malloc"))
    train_only: bool = option(False, "train on the Beam build a run left there")
    work_dir: str = option("build/scale", "export and builds (the export is reused)")

    def check_together(self):
        super().check_together()
        if self.num_images <= self.num_val:
            raise InputError(
                f"--num_images must exceed --num_val. Received: {self.num_images}, {self.num_val}"
            )
        if self.train_steps and self.train_steps < 2 * self.steps_per_epoch:
            raise InputError(
                "--train_steps must be at least twice --steps_per_epoch (memory is compared "
                f"after the first validation). Received: {self.train_steps}, "
                f"{self.steps_per_epoch}"
            )


def parse_args(argv=None):
    return parse_config(BuildScaleConfig, __doc__, argv)


def tree_rss_mb(pid):
    """Resident memory of process `pid` and all its descendants, in MiB."""
    children = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        pending.extend(children.get(current, []))
        try:
            with open(f"/proc/{current}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def run_sampled(command, on_sample=None, preload=None):
    """Runs `command`, sampling its process tree's memory; returns `(seconds, peak MiB)`.

    `on_sample(rss)` is called at each sample; `preload` is a library to `LD_PRELOAD`.
    Raises `InputError` with the last line of the command's output when it fails.
    """
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    environment.pop("LD_PRELOAD", None)
    if preload:
        environment["LD_PRELOAD"] = preload
    peak = 0.0
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            command, env=environment, stdout=log, stderr=log, cwd=PROJECT_ROOT
        )
        while process.poll() is None:
            rss = tree_rss_mb(process.pid)
            peak = max(peak, rss)
            if on_sample is not None:
                on_sample(rss)
            time.sleep(SAMPLE_SECONDS)
        seconds = time.perf_counter() - start
        if process.returncode != 0:
            log.seek(0)
            tail = log.read().strip().splitlines()[-1:] or ["(no output)"]
            what = " ".join(Path(part).name for part in command[:2])
            raise InputError(f"{what} failed: {tail[0]}")
    return seconds, peak


def write_export(folder, num_images, num_val, distinct_scenes):
    """The demo export of `num_images` scenes in `folder/export`, written once."""
    from full_semantic.demo_data import write_demo_export

    export = folder / "export"
    stamp = folder / "export.json"
    wanted = {
        "num_images": num_images,
        "num_val": num_val,
        "distinct_scenes": distinct_scenes,
        "size": list(EXPORT_SIZE),
    }
    if export.is_dir() and stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        return export
    start = time.perf_counter()
    write_demo_export(
        export,
        num_images - num_val,
        num_val,
        size=EXPORT_SIZE,
        seed=0,
        distinct_scenes=distinct_scenes,
    )
    stamp.write_text(json.dumps(wanted))
    print(f"# wrote {num_images} images in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return export


def measure_build(export, data_dir, num_images, workers):
    """Builds the export with `tfds build` (on Beam when `workers`); one result dict."""
    shutil.rmtree(data_dir, ignore_errors=True)
    command = [
        str(Path(sys.executable).parent / "tfds"), "build", "full_semantic",
        "--config", "cvat", "--manual_dir", str(export), "--data_dir", str(data_dir),
    ]  # fmt: skip
    if workers:
        command += [
            "--beam_pipeline_options",
            f"runner=DirectRunner,direct_num_workers={workers},"
            "direct_running_mode=multi_processing",
        ]
    seconds, peak = run_sampled(command)
    return {
        "benchmark": "build_scale",
        "mode": "beam" if workers else "plain",
        "workers": workers or 1,
        "num_images": num_images,
        "seconds": round(seconds, 1),
        "images_per_s": round(num_images / seconds, 1),
        "peak_rss_mb": round(peak, 1),
    }


def measure_training(data_dir, work_dir, args):
    """Trains on the built dataset, sampling memory at each validation."""
    shutil.rmtree(work_dir, ignore_errors=True)
    command = [
        sys.executable, str(PROJECT_ROOT / "train.py"),
        "--dataset", "full_semantic/cvat", "--data_dir", str(data_dir),
        "--model", args.model,
        "--image_size", *map(str, args.image_size),
        "--batch_size", str(args.batch_size),
        "--steps", str(args.train_steps),
        "--steps_per_epoch", str(args.steps_per_epoch),
        "--optimizer", "adamw", "--learning_rate", "0.002",
        "--vis_every", "0",
        "--work_dir", str(work_dir),
    ]  # fmt: skip
    history = work_dir / "history.csv"
    per_epoch, epoch_times, after_first = [], [], []

    def on_sample(rss):
        rows = len(history.read_text().splitlines()) - 1 if history.is_file() else 0
        while len(per_epoch) < rows:
            per_epoch.append(rss)
            epoch_times.append(time.perf_counter())
        if per_epoch and rss > 0:
            after_first.append(rss)

    preload = args.tcmalloc if args.allocator == "tcmalloc" else None
    seconds, peak = run_sampled(command, on_sample, preload)
    steps_after_first = args.train_steps - args.steps_per_epoch
    rate = None
    if len(epoch_times) >= 2:
        rate = steps_after_first * args.batch_size / (epoch_times[-1] - epoch_times[0])
    return {
        "benchmark": "build_scale_train",
        "model": args.model,
        "allocator": args.allocator,
        "steps": args.train_steps,
        "steps_per_epoch": args.steps_per_epoch,
        "batch_size": args.batch_size,
        "image_size": list(args.image_size),
        "images_per_s": round(rate, 2) if rate else None,
        "rss_mb": [round(value, 1) for value in per_epoch],
        "peak_rss_mb": round(peak, 1),
        "rss_min_mb": round(min(after_first), 1) if after_first else None,
        "rss_max_mb": round(max(after_first), 1) if after_first else None,
        "rss_spread": round(max(after_first) / min(after_first) - 1, 4) if after_first else None,
        "seconds": round(seconds, 1),
    }


def main(args):
    if args.train_steps and args.allocator == "tcmalloc" and not Path(args.tcmalloc).is_file():
        raise InputError(
            f"{args.tcmalloc}: no such library; install it (apt-get install "
            "libtcmalloc-minimal4), give --tcmalloc PATH or --allocator malloc"
        )
    folder = Path(args.work_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    if args.train_only:
        if not (folder / "tfds_beam" / "full_semantic" / "cvat").is_dir():
            raise InputError(
                f"{folder / 'tfds_beam'}: no Beam build there; run without --train_only"
            )
        training = measure_training(folder / "tfds_beam", folder / "run", args)
        print(json.dumps(training), flush=True)
        return None, training, None
    export = write_export(folder, args.num_images, args.num_val, args.distinct_scenes)
    builds = {"plain": [], "beam": []}
    for _ in range(args.repeats):
        for mode, workers in (("plain", 0), ("beam", args.workers)):
            result = measure_build(export, folder / f"tfds_{mode}", args.num_images, workers)
            builds[mode].append(result)
            print(json.dumps(result), flush=True)
    training = None
    if args.train_steps:
        training = measure_training(folder / "tfds_beam", folder / "run", args)
        print(json.dumps(training), flush=True)
    rates = {
        mode: statistics.median(result["images_per_s"] for result in results)
        for mode, results in builds.items()
    }
    summary = {
        "benchmark": "build_scale_summary",
        "repeats": args.repeats,
        "median_images_per_s": rates,
        "beam_over_plain": round(rates["beam"] / rates["plain"], 3),
        "peak_rss_mb": {
            mode: max(result["peak_rss_mb"] for result in results)
            for mode, results in builds.items()
        },
        "train_rss_spread": training["rss_spread"] if training else None,
        "load_average": list(os.getloadavg()),
    }
    print(json.dumps(summary), flush=True)
    return builds, training, summary


if __name__ == "__main__":
    run_command(main, parse_args, log_level=None)
