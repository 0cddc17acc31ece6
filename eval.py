"""Evaluate a trained run: quality, cost and speed in one report.

Examples:

    # The work dir's best checkpoint on the validation split, with pictures
    python eval.py --work_dir runs/camvid_ddrnet --split val --visualize

    # Metrics per value of a dataset feature (UTokyo day/night)
    python eval.py --work_dir runs/utokyo --split test --group_by daytime

    # Test-time augmentation, and sliding windows for images larger than training crops
    python eval.py --work_dir runs/camvid_ddrnet --flip --scales 0.75 1.0 1.25
    python eval.py --work_dir runs/cityscapes --mode slide --crop 512 1024 --stride 341 683

    # Another checkpoint, another build with the same classes, or a plain folder
    python eval.py --work_dir runs/camvid_ddrnet --checkpoint last
    python eval.py --work_dir runs/camvid_ddrnet --dataset full_semantic/camvid_test --split test
    python eval.py --work_dir runs/camvid_ddrnet --images new/images --masks new/masks

Prints the per-class table (IoU, precision, recall, F1), mIoU / mAcc / aAcc,
parameters, GFLOPs, latency and FPS, and writes W/eval/<split>/: metrics.json,
report.md, confusion_matrix.csv and .png, per_class_iou.png, and with
--visualize the best and worst images as image | truth | prediction | error panels.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from semseg.base.cli import parse_config, run_command  # noqa: E402
from semseg.base.files import check_output_dir  # noqa: E402
from semseg.evaluate.options import EvalConfig  # noqa: E402
from semseg.weights.published_runs import resolve_work_dir  # noqa: E402


def parse_args(argv=None):
    config = parse_config(EvalConfig, __doc__, argv)
    config.work_dir = resolve_work_dir(config.work_dir, weights=config.weights)
    if config.output_dir:
        check_output_dir(config.output_dir, "--output_dir")
    return config


def main(args):
    from semseg.evaluate.evaluation import run_evaluation
    from semseg.evaluate.metrics import format_table

    metrics, output_dir = run_evaluation(args)
    print(format_table(metrics))
    leakage = metrics.get("split_leakage")
    if leakage:
        verdict = "flatters the model" if leakage["leaks"] else "does not leak much"
        print(
            f"split {metrics['split']}: {100 * leakage['near_duplicate_share']:.0f}% of its "
            f"{leakage['val_images']} images are near-duplicates of train images, "
            f"{100 * leakage['shared_sequence_share']:.0f}% share a sequence with train: this "
            f"mIoU {verdict}"
        )
    for value, group in metrics["groups"].items():
        print(f"\n{args.group_by} = {value} ({group['num_examples']} images)")
        print(format_table(group))
    if "latency_ms" in metrics:
        latency = metrics["latency_ms"]
        print(
            f"\n{metrics['model']}: {metrics['params']['total']:,} parameters, "
            f"{metrics['flops'] / 1e9:.2f} GFLOPs ({metrics['macs'] / 1e9:.2f} GMACs) at "
            f"{metrics['image_size'][0]}x{metrics['image_size'][1]}; latency mean "
            f"{latency['mean']:.1f} / p50 {latency['p50']:.1f} / p95 {latency['p95']:.1f} ms, "
            f"{metrics['fps']:.1f} FPS on {metrics['device']} ({metrics['threads']} threads)"
        )
    print(f"report: {output_dir}")
    if args.fail_under is not None and (metrics["mIoU"] or 0.0) < args.fail_under:
        sys.exit(f"error: mIoU {metrics['mIoU']:.4f} is below --fail_under {args.fail_under}")


if __name__ == "__main__":
    run_command(main, parse_args)
