"""Does `select_images.py` pick better images to label than chance? Measured on CamVid.

Examples:

    python bench/active_learning.py                       # the figures in bench/RESULTS.md
    python bench/active_learning.py --seeds 0 1 2 --labelled 40 --count 40 --steps 400

For each seed: `--labelled` random CamVid train images are "labelled", the other train
images are the unlabelled pool. A DDRNet-23-slim is trained on the labelled set; then
`--count` pool images are added twice, once chosen by `semseg.labelling.selection` (the scores
and diverse picks of `select_images.py`, from that model) and once at random, and a
model is trained from scratch on each enlarged set with the same number of steps. All
three are evaluated on the whole CamVid val split (101 images, `background` void).

Prints one JSON line per seed and a last summary line: mean val mIoU of the selected
and the random sets, and their difference in points (selected minus random).
"""

import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from full_semantic import cvat  # noqa: E402
from full_semantic.cvat_writer import ExportWriter, image_member, list_member  # noqa: E402
from semseg.base.cli import Command, at_least, option, parse_config, size_at_least  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CAMVID = ROOT.parent / "shared" / "data" / "camvid_cvat"


@dataclasses.dataclass
class ActiveLearningConfig(Command):
    export: str = option(str(CAMVID), "a CVAT export with train/val lists")
    seeds: tuple[int, ...] = option((0, 1), "seeds of the repeated experiment")
    labelled: int = option(30, "images labelled at the start", check=at_least(1))
    count: int = option(30, "images added by each strategy", check=at_least(1))
    steps: int = option(240, "training steps of every model", check=at_least(1))
    # Half CamVid's training size: several models are trained per seed.
    image_size: tuple[int, int] = option(
        (180, 240), "training height and width", check=size_at_least(1)
    )
    batch_size: int = option(8, check=at_least(1))
    work_root: str = option(str(ROOT / "build" / "active_learning"), "scratch folder (replaced)")


def parse_args(argv=None):
    return parse_config(ActiveLearningConfig, __doc__, argv)


def read_list(export, split):
    return (Path(export) / list_member(split)).read_text().split()


def subset_export(export, folder, train_names):
    """A CVAT export whose train list is `train_names` (the files are links)."""
    export = Path(export).resolve()
    folder.mkdir(parents=True)
    for name in (cvat.IMAGES_DIR, cvat.MASKS_DIR, cvat.LABELMAP_FILE):
        (folder / name).symlink_to(export / name)
    writer = ExportWriter(folder)
    writer.write_list("train", train_names)
    writer.write_list("val", read_list(export, "val"))
    return folder


def train_and_evaluate(args, name, export, train_names, base):
    """Builds `train_names` + val, trains from scratch for `--steps`, returns val mIoU."""

    from full_semantic.config import FullSemanticConfig
    from full_semantic.prepare import build_dataset
    from semseg.config.run_config import RunConfig
    from semseg.evaluate.evaluation import run_evaluation
    from semseg.evaluate.options import EvalConfig
    from semseg.train.training import train

    source = subset_export(export, base / "exports" / name, train_names)
    config = FullSemanticConfig(name=name, source="cvat", void_labels=("background",))
    build_dataset(config, source, base / "tfds")
    work_dir = base / "runs" / name
    train(
        RunConfig(
            work_dir=str(work_dir),
            dataset=f"full_semantic/{name}",
            data_dir=str(base / "tfds"),
            model="ddrnet23_slim",
            image_size=tuple(args.image_size),
            batch_size=args.batch_size,
            steps=args.steps,
            steps_per_epoch=max(1, args.steps // 4),  # validation 4 times per run
            augment=True,
            optimizer="adamw",
            learning_rate=0.003,
            weight_decay=0.01,
            seed=0,
        )
    )
    metrics, _ = run_evaluation(EvalConfig(work_dir=str(work_dir), split="val", latency_runs=0))
    return work_dir, float(metrics["mIoU"])


def run_seed(args, seed, base):
    import numpy as np

    from semseg.labelling.selection import pick_diverse, score_images
    from semseg.predict.inference import Predictor

    names = read_list(args.export, "train")
    rng = np.random.default_rng(seed)
    order = [names[index] for index in rng.permutation(len(names))]
    labelled, pool = order[: args.labelled], order[args.labelled :]
    start = time.perf_counter()
    work_dir, miou_start = train_and_evaluate(
        args, f"al_s{seed}_start", args.export, labelled, base
    )
    predictor = Predictor.from_work_dir(work_dir)
    paths = [Path(args.export) / image_member(name, ".jpg") for name in pool]
    picks = pick_diverse(score_images(predictor, paths), args.count)
    selected = [pick.path.stem for pick in picks]
    chosen = rng.choice(len(pool), size=args.count, replace=False)
    random_names = [pool[index] for index in sorted(chosen)]
    _, miou_selected = train_and_evaluate(
        args, f"al_s{seed}_selected", args.export, labelled + selected, base
    )
    _, miou_random = train_and_evaluate(
        args, f"al_s{seed}_random", args.export, labelled + random_names, base
    )
    return {
        "seed": seed,
        "labelled": args.labelled,
        "added": args.count,
        "miou_start": round(miou_start, 4),
        "miou_selected": round(miou_selected, 4),
        "miou_random": round(miou_random, 4),
        "seconds": round(time.perf_counter() - start),
    }


def main(args):
    base = Path(args.work_root)
    shutil.rmtree(base, ignore_errors=True)
    results = []
    for seed in args.seeds:
        result = run_seed(args, seed, base)
        print(json.dumps(result), flush=True)
        results.append(result)
    selected = sum(result["miou_selected"] for result in results) / len(results)
    chance = sum(result["miou_random"] for result in results) / len(results)
    summary = {
        "seeds": args.seeds,
        "steps": args.steps,
        "image_size": args.image_size,
        "mean_miou_selected": round(selected, 4),
        "mean_miou_random": round(chance, 4),
        "selected_minus_random_points": round(100 * (selected - chance), 2),
        "uptime": os.getloadavg(),
    }
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    from semseg.base.cli import run_command

    run_command(main, parse_args, log_level=None)
